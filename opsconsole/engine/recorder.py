"""Writing how an attempt ended: the one place that records an end, retried until it lands.

A job whose end is never written stays ``running`` (its worker still owns the row), so a
store error while recording is retried with backoff until the write lands or the attempt
turns out to be fenced off. Only a pool that is shutting down gives up, after a bounded
wait; it says so loudly, stops renewing the lease, and the reaper settles the job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from opsconsole.core.clock import Clock
from opsconsole.core.errors import StoreUnavailable
from opsconsole.core.secrets import Redactor
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database
from opsconsole.engine.context import RunResult
from opsconsole.engine.outcome import Settlement, settle

log = logging.getLogger("opsconsole.worker")

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
SHUTDOWN_PATIENCE = 10.0
"""Default seconds a stopping pool keeps trying to record an end before the reaper's turn."""


class Recorder:
    """Records attempt ends for one worker; ``problem`` says why a write is not landing."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        actor: str,
        *,
        max_interruptions: int,
        stopping: threading.Event,
        patience: float = SHUTDOWN_PATIENCE,
    ) -> None:
        self.db = db
        self.clock = clock
        self.actor = actor
        self.max_interruptions = max_interruptions
        self.stopping = stopping
        self.patience = patience
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}

    @property
    def problem(self) -> str | None:
        with self._lock:
            if not self._failing:
                return None
            job, why = next(iter(self._failing.items()))
            more = len(self._failing) - 1
            extra = f" (and {more} more job(s))" if more else ""
            return f"cannot record the end of job {job}{extra}: {why}"

    def settle(
        self, row: Mapping[str, Any], result: RunResult, redactor: Redactor | None = None
    ) -> Settlement | None:
        return settle(
            row,
            result,
            redactor or Redactor(),
            self.clock.now(),
            max_interruptions=self.max_interruptions,
        )

    def record(
        self,
        row: Mapping[str, Any],
        result: RunResult,
        redactor: Redactor | None = None,
        *,
        patient: bool = True,
    ) -> Settlement | None:
        """Write the end of ``row``'s attempt; the settlement written, or None if fenced off.

        ``patient`` retries store errors until the write lands (or the pool has been
        stopping for a while); otherwise one try, and the caller tries again later.
        """
        end = self.settle(row, result, redactor)
        if end is None:
            return None
        job_id = row["id"]
        delay, since, fallback = BACKOFF_FIRST, None, False
        while True:
            try:
                out = job_store.finish(
                    self.db,
                    job_id,
                    row["attempts"],
                    end.state,
                    self.clock.now(),
                    values=end.values,
                    kind=end.kind,
                    message=end.message,
                    actor=self.actor,
                )
            except StoreUnavailable as exc:
                self._failed(job_id, str(exc))
                if not patient:
                    return None
                if since is None:
                    since = time.monotonic()
                    log.error("job %s: cannot record its end, retrying: %s", job_id, exc)
                if self.stopping.is_set() and time.monotonic() - since > self.patience:
                    log.error(
                        "job %s: its end (%s) was never recorded: %s; the reaper will settle "
                        "it when its lease runs out",
                        job_id,
                        end.state.value,
                        exc,
                    )
                    return None
                if self.stopping.is_set():
                    time.sleep(delay)  # stopping: the event no longer waits
                else:
                    self.stopping.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            except Exception as exc:
                # not the store being away: something in this end cannot be written (a bug);
                # record a plain failure that names it rather than leave the job running
                if fallback:
                    log.exception("job %s: cannot record even a plain failure", job_id)
                    self._failed(job_id, f"{type(exc).__name__}: {exc}")
                    return None
                log.exception("job %s: cannot record its end", job_id)
                fallback = True
                end = self.settle(
                    row,
                    RunResult.failed(
                        f"internal error: the job's end could not be recorded "
                        f"({type(exc).__name__}: {exc})",
                        kind="internal",
                    ),
                )
                assert end is not None
                continue
            self._landed(job_id, since)
            return end if out is not None else None

    def _failed(self, job_id: str, why: str) -> None:
        with self._lock:
            self._failing[job_id] = why

    def _landed(self, job_id: str, since: float | None) -> None:
        with self._lock:
            self._failing.pop(job_id, None)
        if since is not None:
            log.warning("job %s: its end is recorded after %.1fs", job_id, time.monotonic() - since)
