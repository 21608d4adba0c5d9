"""The store outage as one pool sees it: when it began, the backoff between tries, when it
ended.

Every loop of a pool that talks to the store (the claimer, heartbeats, the reaper, the
other timers) reports here how its last call went, so an outage is said once when it
begins and once when it ends, however many loops and tries meet it, and they all retry on
one backoff instead of each on its own interval. It never touches the store itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from opsconsole.core.errors import StoreUnavailable

if TYPE_CHECKING:
    from opsconsole.engine.context import Stop

T = TypeVar("T")

log = logging.getLogger("opsconsole.worker")

BACKOFF_FIRST = 0.1
"""Seconds between the first tries after the store failed; each failure doubles it."""
BACKOFF_MAX = 5.0
"""The longest wait between two tries during an outage."""


class Outage:
    """Whether the store answers this pool, and since when (by the pool's clock)."""

    def __init__(
        self,
        *,
        first: float = BACKOFF_FIRST,
        most: float = BACKOFF_MAX,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.first = first
        self.most = most
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._since: float | None = None
        """Monotonic time the current outage began; None while the store answers."""
        self._reason = ""
        self._delay = 0.0
        self._next_try = 0.0
        self._back_at: datetime | None = None
        """The pool clock's time when the store answered again after the last outage."""
        self.outages = 0
        """Outages this pool has seen (each said once in the log)."""

    @property
    def down(self) -> bool:
        return self._since is not None

    @property
    def problem(self) -> str | None:
        """What to show while the store does not answer (None when it does)."""
        with self._lock:
            if self._since is None:
                return None
            away = self._monotonic() - self._since
            return (
                f"the store has not answered for {away:.0f}s: {self._reason}; running jobs go "
                "on, no new job is claimed until it answers"
            )

    def due(self) -> bool:
        """May a loop try the store now? Always while it answers; during an outage, once the
        backoff since the last failed try has passed (so a dead store is not hammered)."""
        with self._lock:
            return self._since is None or self._monotonic() >= self._next_try

    def wait_time(self) -> float:
        """Seconds until the next try is due (0 while the store answers)."""
        with self._lock:
            if self._since is None:
                return 0.0
            return max(self._next_try - self._monotonic(), 0.0)

    def failed(self, reason: str) -> None:
        """A call to the store failed because the store is away: back off; say it once."""
        with self._lock:
            now = self._monotonic()
            first = self._since is None
            if first:
                self._since = now
                self._delay = self.first
                self.outages += 1
            else:
                self._delay = min(self._delay * 2, self.most)
            self._next_try = now + self._delay
            self._reason = reason
        if first:
            log.error(
                "store unavailable: %s; running jobs go on, claiming is paused, retrying with "
                "backoff (up to %gs between tries)",
                reason,
                self.most,
            )

    def worked(self, now: datetime) -> None:
        """A call to the store succeeded: an outage in progress has ended; say it once."""
        if self._since is None:  # the common case, without the lock
            return
        with self._lock:
            if self._since is None:
                return
            away = self._monotonic() - self._since
            self._since = None
            self._back_at = now
            self._delay = 0.0
        log.warning("store available again after %.1fs; claiming resumes", away)

    def steady(self, now: datetime, span: float) -> bool:
        """Has the store answered without a break for ``span`` seconds before ``now``?

        After an outage every worker's heartbeat is old, through no fault of the worker: the
        reaper judges heartbeats and leases only once the other workers have had a lease's
        time to heartbeat again.
        """
        with self._lock:
            if self._since is not None:
                return False
            return self._back_at is None or (now - self._back_at).total_seconds() >= span


class StoppedWaiting(Exception):
    """A run was stopped (cancel, timeout, the worker's shutdown) while it waited for the
    store; ``reason`` and the message say how it ends."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def wait_out(
    call: Callable[[], T],
    stop: Stop,
    *,
    job_id: str,
    doing: str,
    done: str,
    stopping: threading.Event | None = None,
) -> T:
    """``call()``, tried again while it fails because the store server is away.

    A claimed job's own store work (its run's preparation, a Terraform plan's record) meets
    an outage that is not the job's failure: it waits for the store, backing off as the
    recorder does for an end, said once when it begins and once when it ends. A stop
    meanwhile (``stop``; ``stopping``, the worker shutting down, stops it as interrupted)
    raises StoppedWaiting. A StoreUnavailable that waiting does not change (not ``away``)
    is raised at once. ``doing`` completes "job J: cannot ...", ``done`` "job J: ... after
    N s".
    """
    delay, since = BACKOFF_FIRST, None
    while True:
        try:
            value = call()
        except StoreUnavailable as exc:
            if not exc.away:
                raise
            if since is None:
                since = time.monotonic()
                log.error("job %s: cannot %s, retrying: %s", job_id, doing, exc)
            if stopping is not None and stopping.is_set():
                stop.set("interrupted", "the worker shut down")
            if stop.event.wait(delay):
                reason = stop.reason or "interrupted"
                message = stop.message or reason.replace("_", " ")
                raise StoppedWaiting(
                    reason, f"{message} while its run waited for the store ({exc})"
                ) from None
            delay = min(delay * 2, BACKOFF_MAX)
            continue
        if since is not None:
            log.warning("job %s: %s after %.1fs", job_id, done, time.monotonic() - since)
        return value
