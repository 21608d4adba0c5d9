"""The ONE thread worker that follows the store: events, running jobs, counts, one log.

It reads forward from cursors (``job_events.id`` and the followed job's log line number)
and posts messages; it never touches a widget. A failing store becomes a ``StoreStatus``
message and a slower retry, never an exception in the UI.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from textual.message import Message

from opsconsole.core.audit import ACTION_KINDS
from opsconsole.core.errors import OpsError
from opsconsole.core.service import OpsService
from opsconsole.core.states import FINAL, JobState
from opsconsole.core.views import EventView
from opsconsole.tui.messages import (
    CountsChanged,
    EventsArrived,
    JobsChanged,
    LogLinesArrived,
    StoreStatus,
)

INTERVAL = 0.2
RUNNING_EVERY = 1.0
COUNTS_EVERY = 2.0
"""Seconds between reads of the live counts (cheap: the state index's live part)."""
RECOUNT_EVERY = 60.0
"""Seconds between full counts, history included (a scan of a million rows). Between
them the final counts move by the finishing events the feed reads anyway."""
LOG_BATCH = 5000
SLOW_AFTER = 3.0
"""Seconds one round of reads may take before the console says the store is slow."""

FREEZE_KINDS = ACTION_KINDS["freeze"]
"""A freeze set or lifted: the header and the frozen rows of the queue change."""
FINAL_STATES = frozenset(s.value for s in FINAL)
LEFT_FINAL = frozenset({JobState.QUEUED.value, JobState.AWAITING_APPROVAL.value})
"""An operator's ``retried`` event moves a job from a final state to one of these: which
final state it left is not in the event, so the next counts tick counts everything again."""


class Feed:
    def __init__(self, service: OpsService, post: Callable[[Message], object]) -> None:
        self.service = service
        self.post = post
        self.cursor = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._log_job: str | None = None
        self._log_cursor = 0
        self._ok: bool | None = None
        self._status_lock = threading.Lock()
        self._cycle_started: float | None = None
        self._finals: dict[str, int] | None = None
        """Jobs per final state: the last full count plus the finishing events since."""
        self._counted_through = 0
        """The last event id before the full count: later finishing events add to it."""
        self._recount_at = 0.0
        self._counts_lock = threading.Lock()

    def counts(self) -> dict[str, int]:
        """Jobs per state for the header: live states read now, final ones from the last
        full count (every ``RECOUNT_EVERY`` s, or after a job left a final state) plus the
        finishing events read since. Never a count of all of history per tick."""
        with self._counts_lock:  # the console's first load and the feed may both ask
            now = time.monotonic()
            if self._finals is None or now >= self._recount_at:
                mark = self.service.last_event_id()
                counts = self.service.counts()
                self._finals = {k: v for k, v in counts.items() if k in FINAL_STATES}
                self._counted_through = mark
                self._recount_at = now + RECOUNT_EVERY
                return counts
            return {**self._finals, **self.service.live_counts()}

    def _count_finishes(self, events: list[EventView]) -> None:
        with self._counts_lock:
            finals = self._finals
            if finals is None:
                return
            for e in events:
                if e.id <= self._counted_through or e.state is None:
                    continue
                if e.state in FINAL_STATES:
                    finals[e.state] = finals.get(e.state, 0) + 1
                elif e.kind == "retried" and e.state in LEFT_FINAL:
                    self._recount_at = 0.0  # from which final state? count again

    def start_at(self, cursor: int) -> None:
        self.cursor = cursor

    def follow(self, job_id: str | None, after: int) -> None:
        """Follow ``job_id``'s log from line ``after`` (None: follow nothing)."""
        with self._lock:
            self._log_job = job_id
            self._log_cursor = after
        self._wake.set()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        """Follow the store until ``stop``: a commit anywhere wakes it at once (PostgreSQL's
        notifications), and it looks every ``INTERVAL`` seconds anyway."""
        unsubscribe = self.service.on_change(self.poke)
        try:
            self._follow()
        finally:
            unsubscribe()

    def _follow(self) -> None:
        last_running = 0.0
        last_counts = time.monotonic()  # the console's first load has just counted
        failures = 0
        threading.Thread(target=self._watch_slowness, name="feed-watchdog", daemon=True).start()
        while not self._stop.is_set():
            now = time.monotonic()
            self._cycle_started = now
            try:
                self._events()
                if now - last_running >= RUNNING_EVERY:
                    self.post(JobsChanged(self.service.running()))
                    last_running = now
                self._log()
                if now - last_counts >= COUNTS_EVERY:
                    counts = self.counts()
                    requests = (
                        self.service.approval_requests() if counts.get("awaiting_approval") else []
                    )
                    self.post(
                        CountsChanged(
                            counts,
                            self.service.workers(),
                            freezes=self.service.freezes(),
                            approvals=requests,
                        )
                    )
                    last_counts = now
                self._status(True, "")
                failures = 0
            except OpsError as exc:
                failures += 1
                self._status(False, str(exc))
            except Exception as exc:  # the feed must outlive any one bad read
                failures += 1
                self._status(False, f"{type(exc).__name__}: {exc}")
            self._cycle_started = None
            delay = INTERVAL if failures == 0 else min(5.0, INTERVAL * 2**failures)
            self._wake.wait(delay)
            self._wake.clear()

    def _watch_slowness(self) -> None:
        """A read that hangs (a locked SQLite file, a stalled server) shows as a banner too."""
        while not self._stop.wait(0.5):
            started = self._cycle_started
            if started is not None and time.monotonic() - started > SLOW_AFTER:
                waited = time.monotonic() - started
                self._status(False, f"the store has not answered for {waited:.0f}s")

    def _status(self, ok: bool, message: str) -> None:
        with self._status_lock:
            if ok == self._ok and ok:
                return
            if not ok and self._ok is False and "not answered" not in message:
                return  # one banner per failure, not one per retry
            self._ok = ok
        self.post(StoreStatus(ok, message))

    def _events(self) -> None:
        while True:
            events = self.service.events_since(self.cursor, limit=2000)
            if not events:
                return
            self.cursor = events[-1].id
            self._count_finishes(events)
            ids = list(dict.fromkeys(e.job_id for e in events))
            if any(e.kind in FREEZE_KINDS for e in events):  # every queued row may change
                self.post(JobsChanged(self.service.queue()))
                svc = self.service
                self.post(CountsChanged(self.counts(), svc.workers(), freezes=svc.freezes()))
            for i in range(0, len(ids), 500):
                self.post(JobsChanged(self.service.jobs_by_id(ids[i : i + 500])))
            self.post(EventsArrived(events))
            if len(events) < 2000:
                return

    def _log(self) -> None:
        with self._lock:
            job, after = self._log_job, self._log_cursor
        if job is None:
            return
        lines = self.service.logs_since(job, after, limit=LOG_BATCH)
        if not lines:
            return
        with self._lock:
            if self._log_job != job:  # the operator switched jobs meanwhile
                return
            self._log_cursor = lines[-1].seq
        self.post(LogLinesArrived(job, lines))
        if len(lines) == LOG_BATCH:
            self._wake.set()  # more to read: come back at once
