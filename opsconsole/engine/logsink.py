"""Buffers a run's log lines and progress, redacts them, and writes them to the store.

One sink per running attempt, and the only writer of that attempt's log and progress: one
thread writes batches of up to ``batch`` lines every ``interval`` seconds (sooner when a
batch is full) and coalesces progress to one row write per ``progress_interval``. The
store may refuse a write for a while (a full disk, a lock held past the busy timeout): the
writer keeps the batch and retries it with backoff, so lines land once each and in order.
The buffer is bounded: while it is full, ``write`` blocks, and the job slows down instead
of the worker growing its memory or dropping lines.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from datetime import datetime

from opsconsole.core.clock import Clock
from opsconsole.core.errors import OpsError
from opsconsole.core.secrets import Redactor
from opsconsole.core.store import feed
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database
from opsconsole.core.text import overwrite_returns, strip_escapes

log = logging.getLogger("opsconsole.worker")

BUFFER_LINES = 10_000
"""Lines a sink holds before ``write`` blocks (the job waits for the store)."""
BUFFER_BYTES = 8 * 1024 * 1024
"""UTF-8 bytes of text a sink holds before ``write`` blocks; one line is always accepted."""
RETRY_FIRST = 0.1
"""Seconds before the first retry of a refused write; each failure doubles it."""
RETRY_MAX = 5.0
"""The longest wait between two retries during an outage."""

Line = tuple[datetime, str, str]


# Escape sequences, and C0/C1 controls except tab: job output is untrusted
def clean_line(text: str) -> str:
    """What a terminal would show of one line of output, without escape sequences."""
    return strip_escapes(overwrite_returns(text))


class LogSink:
    """Redacts and buffers one attempt's output; a thread of its own (started by its first
    line or progress) writes it to the store.

    ``write`` and ``progress`` may be called from any thread. ``close`` ends the sink and
    waits for the writes; it never raises and says whether everything landed.
    """

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
        buffer_lines: int = BUFFER_LINES,
        buffer_bytes: int = BUFFER_BYTES,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
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
        self.buffer_lines = max(buffer_lines, 1)
        self.buffer_bytes = max(buffer_bytes, 1)
        self.retry_first = retry_first
        self.retry_max = retry_max
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        """Producers wait here for room, ``close`` for the writes to land."""
        self._work = threading.Condition(self._lock)
        """The writer thread waits here for a batch, a close, or the end of a backoff."""
        # lines not yet in the store, oldest first; a batch leaves only once it has landed
        self._lines: deque[tuple[Line, int]] = deque()
        self._bytes = 0
        self._blocked = 0
        self._closed = False
        self._fenced = False
        self._problem: str | None = None
        self._failures = 0
        self._late = 0
        self._progress: tuple[int | None, str | None] | None = None
        self._progress_version = 0
        self._progress_written = 0
        self._thread: threading.Thread | None = None
        """The writer, started by the first line or progress: a run that writes nothing
        costs no thread and no transaction."""

    def _start(self) -> None:
        """Under the lock: start the writer thread if it is not running yet."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"logsink-{self.job_id}", daemon=True
            )
            self._thread.start()

    # -- what the pool reads -------------------------------------------------------------

    @property
    def fenced(self) -> bool:
        """True once the store refused a write: this attempt was replaced or has ended."""
        return self._fenced

    @property
    def problem(self) -> str | None:
        """Why the sink cannot write right now (the store's error); None when it can."""
        return self._problem

    @property
    def failed_writes(self) -> int:
        """Writes the store refused since the last one it took (0 when all is well)."""
        return self._failures

    @property
    def buffered_lines(self) -> int:
        """Lines held that the store has not taken yet."""
        return len(self._lines)

    @property
    def buffered_bytes(self) -> int:
        """UTF-8 bytes of text held that the store has not taken yet."""
        return self._bytes

    @property
    def blocked_writers(self) -> int:
        """Threads waiting in ``write`` for room in the buffer."""
        return self._blocked

    # -- producers -----------------------------------------------------------------------

    def write(self, stream: str, text: str) -> None:
        """Add one line; blocks while the buffer is full, until the store takes lines again.

        A line written after ``close`` (by a handler that outlived its attempt) is dropped:
        its attempt has ended, so the store would refuse it. The first such line is logged.
        """
        # redact before cutting, so a secret across the cut cannot leak its first characters
        text = self.redactor.text(clean_line(text))
        if len(text) > self.line_max:
            text = text[: self.line_max] + f" … [{len(text) - self.line_max} chars truncated]"
        size = len(text.encode("utf-8", "surrogatepass"))
        line = (self.clock.now(), stream, text)
        with self._lock:
            if self._closed:
                self._late += 1
                if self._late == 1:
                    log.warning(
                        "job %s attempt %s: output after the attempt ended is dropped",
                        self.job_id,
                        self.attempt,
                    )
                return
            if self._full(size):
                self._blocked += 1
                self._work.notify()
                try:
                    while self._full(size) and not self._fenced:
                        self._room.wait()
                finally:
                    self._blocked -= 1
            if self._fenced:
                return
            self._lines.append((line, size))
            self._bytes += size
            self._start()
            if len(self._lines) >= self.batch or self._closed:
                self._work.notify()

    def _full(self, size: int) -> bool:
        # an empty buffer takes any line, so one line larger than the bound cannot hang
        return bool(self._lines) and (
            len(self._lines) >= self.buffer_lines or self._bytes + size > self.buffer_bytes
        )

    def progress(self, percent: int | None, step: str | None) -> None:
        """Record progress; only the latest value is written, at most every few tenths."""
        if step is not None:
            step = self.redactor.text(clean_line(step))[:200]
        with self._lock:
            if self._closed or self._fenced:
                return
            old = self._progress
            self._progress = (
                percent if percent is not None else (old[0] if old else None),
                step if step is not None else (old[1] if old else None),
            )
            self._progress_version += 1
            self._start()

    # -- closing -------------------------------------------------------------------------

    def close(self, timeout: float | None = 30.0) -> bool:
        """Accept nothing more and wait up to ``timeout`` seconds (None: no limit) for the writes.

        True when nothing is left to write: every line and the last progress landed, or the
        store fenced this attempt off (see ``fenced``). False while the store refuses writes
        (``problem`` says why): the lines are kept and retried, and calling ``close`` again
        waits again. Never raises, so a job's cleanup always goes on to record its end.
        """
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            with self._lock:
                self._closed = True
                self._work.notify()
                while not self._settled():
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._room.wait(left)
            if self._thread is not None:
                left = 5.0 if deadline is None else max(deadline - time.monotonic(), 0.1)
                self._thread.join(left)
            return True
        except Exception:  # close runs in a job's cleanup: nothing may escape it
            log.exception("job %s attempt %s: closing its log failed", self.job_id, self.attempt)
            return False

    def _settled(self) -> bool:
        return self._fenced or (
            not self._lines
            and self._blocked == 0
            and self._progress_written == self._progress_version
        )

    # -- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        outage_since = 0.0
        retry_at = 0.0
        last_progress = 0.0
        while True:
            with self._lock:
                self._wait_for_work(retry_at)
                if self._fenced or (self._closed and self._settled()):
                    self._room.notify_all()
                    return
                chunk = [line for line, _ in itertools.islice(self._lines, self.batch)]
                now = time.monotonic()
                version = self._progress_version
                progress = None
                if version != self._progress_written and (
                    self._closed or now - last_progress >= self.progress_interval
                ):
                    progress = self._progress
            try:
                ok = self._write(chunk, progress, version)
            except Exception as exc:  # the writer outlives any store error: keep, back off, retry
                self._failures += 1
                failures = self._failures
                reason = str(exc) if isinstance(exc, OpsError) else f"{type(exc).__name__}: {exc}"
                self._problem = f"the log of job {self.job_id} cannot be written: {reason}"
                if failures == 1:
                    outage_since = time.monotonic()
                    log.warning(
                        "job %s attempt %s: cannot write its log (%s); keeping %d lines and "
                        "retrying",
                        self.job_id,
                        self.attempt,
                        reason,
                        len(self._lines),
                        exc_info=not isinstance(exc, OpsError),
                    )
                retry_at = time.monotonic() + min(
                    self.retry_first * 2 ** min(failures - 1, 30), self.retry_max
                )
                continue
            if progress is not None:
                last_progress = now
            if self._failures:
                log.info(
                    "job %s attempt %s: log writes resumed after %.1fs",
                    self.job_id,
                    self.attempt,
                    time.monotonic() - outage_since,
                )
                self._failures = 0
                self._problem = None
            if not ok:
                with self._lock:
                    self._fence()
                    self._room.notify_all()

    def _wait_for_work(self, retry_at: float) -> None:
        """Under the lock: return when a write is due, or when the sink may end."""
        tick = time.monotonic() + self.interval
        while True:
            now = time.monotonic()
            if now < retry_at:  # backing off: a producer's nudge does not cut it short
                self._work.wait(retry_at - now)
                continue
            pending = bool(self._lines) or self._progress_written != self._progress_version
            if (
                self._fenced
                or (self._closed and (pending or self._blocked == 0))
                or (self._blocked and self._lines)
                or len(self._lines) >= self.batch
                or now >= tick
            ):
                return
            self._work.wait(tick - now)

    def _write(
        self, chunk: list[Line], progress: tuple[int | None, str | None] | None, version: int
    ) -> bool:
        """One batch, then the latest progress; each leaves the buffer as soon as it landed.

        False when the store fenced this attempt off.
        """
        if chunk:
            if not feed.append_logs(self.db, self.job_id, self.attempt, chunk, cap=self.cap):
                return False
            with self._lock:
                for _ in chunk:
                    _, size = self._lines.popleft()
                    self._bytes -= size
                self._room.notify_all()
        if progress is not None:
            percent, step = progress
            now = self.clock.now()
            if not job_store.update_progress(
                self.db, self.job_id, self.attempt, now, progress=percent, step=step
            ):
                return False
            with self._lock:
                self._progress_written = version
                self._room.notify_all()
        return True

    def _fence(self) -> None:
        """Under the lock: the store refused this attempt; drop what it would refuse again."""
        self._fenced = True
        if self._lines:
            log.warning(
                "job %s attempt %s: the store refused %d log lines: the attempt was replaced "
                "or has ended",
                self.job_id,
                self.attempt,
                len(self._lines),
            )
        self._lines.clear()
        self._bytes = 0
