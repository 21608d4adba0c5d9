"""Writing how an attempt ended: the one place that records an end, retried until it lands.

A job whose end is never written stays ``running`` (its worker still owns the row), so a
store error while recording is retried with backoff until the write lands or the attempt
turns out to be fenced off. Only a pool that is shutting down gives up, after a bounded
wait. It then keeps the end in a private file under its home (``unrecorded/``), which the
next worker started there records (``replay``); the attempt number fences that late write,
so if the reaper settled the job first (no worker came back within the lease), the kept
end is dropped, said in the log, rather than written over the reaper's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from opsconsole.core.clock import Clock
from opsconsole.core.errors import StoreUnavailable
from opsconsole.core.secrets import Redactor
from opsconsole.core.states import JobState
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database
from opsconsole.engine.context import RunResult
from opsconsole.engine.outage import BACKOFF_FIRST, BACKOFF_MAX
from opsconsole.engine.outcome import Settlement, settle

log = logging.getLogger("opsconsole.worker")

SHUTDOWN_PATIENCE = 10.0
"""Default seconds a stopping pool keeps trying to record an end before it keeps it in a file."""
SPOOL = "unrecorded"
"""The directory, under a worker's home, of the ends a stopping worker could not record."""


class _Alone(Exception):
    """A batch failed for a reason other than the store: write each of its ends alone."""


_ALONE = _Alone()


class _Pending:
    """One end waiting in the recorder's queue, and what became of it."""

    __slots__ = ("done", "end", "error", "out")

    def __init__(self, end: job_store.End) -> None:
        self.end = end
        self.done = False
        self.out: Any = None
        self.error: BaseException | None = None


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
        spool: Path | None = None,
        serial: contextlib.AbstractContextManager[Any] | None = None,
    ) -> None:
        self.db = db
        self.spool = spool
        """Where a stopping worker keeps the ends it could not record (None: nowhere)."""
        self.clock = clock
        self.actor = actor
        self.max_interruptions = max_interruptions
        self.stopping = stopping
        self.patience = patience
        self.serial: contextlib.AbstractContextManager[Any] = (
            serial if serial is not None else contextlib.nullcontext()
        )
        """Held around each write: the pool's claimer and recorder take turns on SQLite."""
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}
        self._batch_ready = threading.Condition(threading.Lock())
        self._queue: list[_Pending] = []
        self._writing = False

    @property
    def problem(self) -> str | None:
        with self._lock:
            if not self._failing:
                return None
            job, why = next(iter(self._failing.items()))
            more = len(self._failing) - 1
            extra = f" (and {more} more job(s))" if more else ""
            return f"cannot record the end of job {job}{extra}: {why}"

    @property
    def writing(self) -> bool:
        """True while a batch of ends is being written."""
        with self._batch_ready:
            return self._writing

    @property
    def queued(self) -> int:
        """Ends waiting for the batch being written to land before they are written."""
        with self._batch_ready:
            return len(self._queue)

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
        ended = self.clock.now()  # the end's time, however long the store takes to hear of it
        end = self.settle(row, result, redactor)
        if end is None:
            return None
        job_id = row["id"]
        delay, since, fallback = BACKOFF_FIRST, None, False
        while True:
            try:
                out = self._finish(
                    job_store.End(
                        job_id,
                        row["attempts"],
                        end.state,
                        ended,
                        end.values,
                        kind=end.kind,
                        message=end.message,
                        actor=self.actor,
                    )
                )
            except StoreUnavailable as exc:
                self._failed(job_id, str(exc))
                if not patient:
                    return None
                if since is None:
                    since = time.monotonic()
                    log.error("job %s: cannot record its end, retrying: %s", job_id, exc)
                if self.stopping.is_set() and time.monotonic() - since > self.patience:
                    kept = self._keep(job_id, row["attempts"], end, ended)
                    log.error(
                        "job %s: its end (%s) could not be recorded: %s; %s",
                        job_id,
                        end.state.value,
                        exc,
                        f"kept in {kept}: the next worker started here records it (unless the "
                        "reaper settles the job first, when its lease runs out)"
                        if kept
                        else "the reaper will settle it when its lease runs out",
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
            if out is None and since is not None:
                # a commit whose answer the broken connection lost may have been this end
                log.warning(
                    "job %s: attempt %s was already settled when its end (%s) could be "
                    "written: either an earlier try landed before the connection broke, or "
                    "the reaper settled it",
                    job_id,
                    row["attempts"],
                    end.state.value,
                )
            return end if out is not None else None

    def _finish(self, end: job_store.End) -> Any:
        """Write one end, in one transaction with the ends other slots are writing now.

        Group commit: the first slot to arrive writes every end queued while the previous
        batch was being written, in one transaction; the others wait for its answer. Alone,
        an end is written at once. A batch that fails on a store error fails every end in it
        (each retries as before); one that fails otherwise (one end that cannot be written)
        is written again end by end, so one bad end never fails another job.
        """
        mine = _Pending(end)
        with self._batch_ready:
            self._queue.append(mine)
            while not mine.done and self._writing:
                self._batch_ready.wait()
            if not mine.done:
                batch, self._queue = self._queue, []
                self._writing = True
        if not mine.done:
            try:
                with self.serial:
                    outs = job_store.finish_many(self.db, [p.end for p in batch])
                for pending, out in zip(batch, outs, strict=True):
                    pending.out = out
            except StoreUnavailable as exc:
                for pending in batch:
                    pending.error = exc
            except Exception as exc:
                for pending in batch:
                    pending.error = exc if len(batch) == 1 else _ALONE
            finally:
                with self._batch_ready:
                    for pending in batch:
                        pending.done = True
                    self._writing = False
                    self._batch_ready.notify_all()
        if mine.error is _ALONE:
            with self.serial:
                return job_store.finish_many(self.db, [end])[0]
        if mine.error is not None:
            raise mine.error
        return mine.out

    def _failed(self, job_id: str, why: str) -> None:
        with self._lock:
            self._failing[job_id] = why

    def _landed(self, job_id: str, since: float | None) -> None:
        with self._lock:
            self._failing.pop(job_id, None)
        if since is not None:
            log.warning("job %s: its end is recorded after %.1fs", job_id, time.monotonic() - since)

    # -- ends kept while the store was away ------------------------------------------------

    def _keep(self, job_id: str, attempt: int, end: Settlement, ended: datetime) -> Path | None:
        """Write an end that could not be recorded to a private file; its path, or None."""
        if self.spool is None:
            return None
        record = {
            "job": job_id,
            "attempt": attempt,
            "state": end.state.value,
            "kind": end.kind,
            "message": end.message,
            "values": end.values,
            "ended": ended,
            "worker": self.actor,
        }
        path = self.spool / f"{job_id}.{attempt}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
        try:
            data = json.dumps(record, default=_encode).encode()
            self.spool.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except (OSError, TypeError, ValueError) as exc:
            log.error("job %s: cannot keep its end in %s: %s", job_id, self.spool, exc)
            tmp.unlink(missing_ok=True)
            return None
        return path

    def replay(self) -> int:
        """Record the ends that workers stopped during an outage kept here; how many landed.

        Each is written at its own end time and fenced by its attempt, so one the reaper
        settled meanwhile is dropped, not written over the reaper's. A store error leaves
        the rest for the next start (and is raised).
        """
        if self.spool is None or not self.spool.is_dir():
            return 0
        landed = 0
        for path in sorted(self.spool.glob("*.json")):
            mine = path.with_name(f"{path.name}.{os.getpid()}.replaying")
            try:
                path.rename(mine)  # another worker sharing this home takes each file once
                record = json.loads(mine.read_text(), object_hook=_decode)
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:
                log.error("cannot read the kept end %s: %s", path, exc)
                continue
            try:
                out = job_store.finish(
                    self.db,
                    record["job"],
                    record["attempt"],
                    JobState(record["state"]),
                    record["ended"],
                    values=record["values"],
                    kind=record["kind"],
                    message=record["message"],
                    actor=record["worker"],
                )
            except StoreUnavailable:
                mine.rename(path)
                raise
            mine.unlink(missing_ok=True)
            if out is None:
                log.warning(
                    "job %s: the end (%s) kept by worker %s is dropped: the job was settled "
                    "meanwhile (its lease ran out)",
                    record["job"],
                    record["state"],
                    record["worker"],
                )
                continue
            landed += 1
            log.warning(
                "job %s: its end (%s), kept by worker %s while the store was away, is recorded",
                record["job"],
                record["state"],
                record["worker"],
            )
        return landed


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    raise TypeError(f"{type(value).__name__} is not JSON")


def _decode(obj: dict[str, Any]) -> object:
    if set(obj) == {"$datetime"}:
        return datetime.fromisoformat(obj["$datetime"])
    return obj
