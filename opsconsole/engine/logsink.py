"""Buffers a run's log lines, redacts them, and writes them to the store in batches.

One sink per running attempt. Lines are flushed every ``interval`` seconds or every
``batch`` lines, whichever comes first, so a chatty job costs one write per batch, not one
per line. Progress is coalesced the same way.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from opsconsole.core.clock import Clock
from opsconsole.core.secrets import Redactor
from opsconsole.core.store import feed
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database
from opsconsole.core.text import overwrite_returns, strip_escapes


# Escape sequences, and C0/C1 controls except tab: job output is untrusted
def clean_line(text: str) -> str:
    """What a terminal would show of one line of output, without escape sequences."""
    return strip_escapes(overwrite_returns(text))


class LogSink:
    def __init__(
        self,
        db: Database,
        job_id: str,
        attempt: int,
        clock: Clock,
        redactor: Redactor,
        *,
        cap: int,
        line_max: int,
        batch: int = 500,
        interval: float = 0.2,
        progress_interval: float = 0.5,
    ) -> None:
        self.db = db
        self.job_id = job_id
        self.attempt = attempt
        self.clock = clock
        self.redactor = redactor
        self.cap = cap
        self.line_max = line_max
        self.batch = batch
        self.interval = interval
        self.progress_interval = progress_interval
        self._buf: list[tuple[datetime, str, str]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self.fenced = False
        """True once the store refused a write: this attempt was replaced."""
        self._progress: tuple[int | None, str | None] | None = None
        self._progress_dirty = False
        self._step_changed = False
        self._thread = threading.Thread(target=self._loop, name=f"logsink-{job_id}", daemon=True)
        self._thread.start()

    def write(self, stream: str, text: str) -> None:
        # redact before cutting, so a secret across the cut cannot leak its first characters
        text = self.redactor.text(clean_line(text))
        if len(text) > self.line_max:
            text = text[: self.line_max] + f" … [{len(text) - self.line_max} chars truncated]"
        with self._lock:
            self._buf.append((self.clock.now(), stream, text))
            full = len(self._buf) >= self.batch
        if full:
            self._wake.set()

    def progress(self, percent: int | None, step: str | None) -> None:
        if step is not None:
            step = self.redactor.text(clean_line(step))[:200]
        with self._lock:
            old = self._progress
            self._step_changed = self._step_changed or old is None or old[1] != step
            self._progress = (
                percent if percent is not None else (old[0] if old else None),
                step if step is not None else (old[1] if old else None),
            )
            self._progress_dirty = True

    def _loop(self) -> None:
        last_progress = 0.0
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()
            now = time.monotonic()
            if self._progress_dirty and (
                self._step_changed or now - last_progress >= self.progress_interval
            ):
                self._flush_progress()
                last_progress = now
            if self._closed:
                return

    def flush(self) -> None:
        with self._flush_lock:
            while True:
                with self._lock:
                    chunk, self._buf = self._buf[: self.batch], self._buf[self.batch :]
                if not chunk:
                    return
                if self.fenced:
                    continue
                if not feed.append_logs(self.db, self.job_id, self.attempt, chunk, cap=self.cap):
                    self.fenced = True

    def _flush_progress(self) -> None:
        with self._lock:
            if not self._progress_dirty or self._progress is None:
                return
            percent, step = self._progress
            event = self._step_changed
            self._progress_dirty = False
            self._step_changed = False
        if self.fenced:
            return
        ok = job_store.update_progress(
            self.db,
            self.job_id,
            self.attempt,
            self.clock.now(),
            progress=percent,
            step=step,
            event=event,
        )
        if not ok:
            self.fenced = True

    def close(self) -> None:
        """Flush everything; the sink accepts nothing after this."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()
        self._flush_progress()
