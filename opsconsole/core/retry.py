"""Retry backoff: pure functions of the attempt number and now, so tests need no sleeping."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

MAX_BACKOFF_S = 3600.0
"""No retry waits longer than this, jitter included."""
JITTER = 0.2
"""Each delay is spread by up to +/-20% so failed jobs do not retry in lockstep."""


def backoff_delay(failures: int, base_s: float, *, rand: float | None = None) -> float:
    """Seconds before the next attempt after ``failures`` failed attempts (1 = first retry)."""
    if failures < 1:
        return 0.0
    r = random.random() if rand is None else rand
    # the exponent is bounded so a huge failure count caps instead of overflowing a float
    delay = min(MAX_BACKOFF_S, base_s * 2.0 ** min(failures - 1, 64))
    return min(MAX_BACKOFF_S, max(0.0, delay * (1 - JITTER + 2 * JITTER * r)))


def next_attempt_at(
    now: datetime, failures: int, base_s: float, *, rand: float | None = None
) -> datetime:
    return now + timedelta(seconds=backoff_delay(failures, base_s, rand=rand))
