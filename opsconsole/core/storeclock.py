"""The pool's clock: this machine's clock, corrected to the database server's.

Leases, heartbeats and stale checks compare times written by workers on different
machines; each machine's own clock may be off by seconds (or minutes), so a worker whose
clock is behind would see its peers' leases as fresh long after they ran out. Each
heartbeat reads the store's clock, and the pool learns the offset between the two; every
time the pool writes or compares is then the store's. A settable clock (tests) is never
corrected: time stays exactly what the test says.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from opsconsole.core.clock import Clock, SystemClock

SKEW_NOTED = 2.0
"""Seconds of difference from the store's clock past which the pool says so (a problem
on its row, so ``health`` fails): the pool corrects it, but the machine's clock is wrong."""
JITTER = 0.1
"""Changes of the measured offset smaller than this are ignored: they are the round trip's
noise, and a clock that wobbles by them would make end times precede start times."""


class StoreClock:
    """``base`` plus the offset to the store's clock learned at the last heartbeat."""

    def __init__(self, base: Clock) -> None:
        self.base = base
        self.corrects = isinstance(base, SystemClock)
        """False for a settable clock: a test's time is never corrected."""
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        """Seconds to add to this machine's clock to get the store's."""
        with self._lock:
            return self._offset

    def now(self) -> datetime:
        now = self.base.now()
        return now + timedelta(seconds=self.offset) if self.corrects else now

    def learn(self, store_now: datetime | None, sent: datetime, received: datetime) -> None:
        """Take the store's time read between ``sent`` and ``received`` (this machine's
        uncorrected clock): the store read it, on average, half way through the round trip."""
        if store_now is None or not self.corrects:
            return
        midpoint = sent + (received - sent) / 2
        measured = (store_now - midpoint).total_seconds()
        with self._lock:
            if abs(measured - self._offset) >= JITTER:
                self._offset = measured

    def skew_problem(self) -> str | None:
        """One line when this machine's clock is far from the store's, else None."""
        off = self.offset
        if abs(off) < SKEW_NOTED:
            return None
        way = "behind" if off > 0 else "ahead of"
        return (
            f"this machine's clock is {abs(off):.1f}s {way} the store's "
            "(leases use the store's clock; fix the machine's time sync)"
        )
