"""Time as a parameter: the system clock, and a settable clock for tests.

Every decision that depends on time (run_at, backoff, leases) asks a Clock, so tests move
time instead of sleeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC now."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return utcnow()


class SettableClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, value: datetime) -> None:
        with self._lock:
            self._now = value

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


def parse_datetime(text: str) -> datetime:
    """ISO 8601 from an operator; a time without a zone is their local time."""
    from opsconsole.core.errors import InvalidParams

    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidParams(
            f"invalid time '{text[:40]}': use ISO 8601, e.g. 2026-05-01T14:30 or 2026-05-01T14:30Z"
        ) from None
    return value if value.tzinfo is not None else value.astimezone()
