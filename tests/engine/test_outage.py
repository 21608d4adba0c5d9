"""The pool's view of a store outage: said once, one backoff, and when reaping may resume."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from opsconsole.engine.outage import Outage

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_said_once_when_it_begins_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks = Ticks()
    outage = Outage(monotonic=ticks)
    with caplog.at_level(logging.INFO, logger="opsconsole.worker"):
        for _ in range(50):  # many loops, many tries
            outage.failed("store x: connection refused")
            ticks.now += 1
        outage.worked(T0)
        outage.worked(T0)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("store unavailable: store x: connection refused; running jobs go on")
    assert lines[1] == "store available again after 50.0s; claiming resumes"
    assert outage.outages == 1 and not outage.down and outage.problem is None


def test_tries_during_an_outage_back_off_to_a_ceiling() -> None:
    ticks = Ticks()
    outage = Outage(first=0.1, most=1.0, monotonic=ticks)
    assert outage.due() and outage.wait_time() == 0.0
    waits = []
    for _ in range(7):
        outage.failed("down")
        waits.append(round(outage.wait_time(), 3))
        assert not outage.due()
        ticks.now += outage.wait_time()
        assert outage.due()
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    outage.worked(T0)
    assert outage.due() and outage.wait_time() == 0.0


def test_the_problem_says_how_long_and_that_running_jobs_go_on() -> None:
    ticks = Ticks()
    outage = Outage(monotonic=ticks)
    outage.failed("store x: gone")
    ticks.now += 12
    assert outage.problem == (
        "the store has not answered for 12s: store x: gone; running jobs go on, no new job is "
        "claimed until it answers"
    )


def test_heartbeats_are_judged_again_a_lease_after_the_store_came_back() -> None:
    outage = Outage(monotonic=Ticks())
    assert outage.steady(T0, 30)  # no outage seen: judge at once
    outage.failed("down")
    assert not outage.steady(T0 + timedelta(hours=1), 30)  # never during one
    outage.worked(T0)
    assert not outage.steady(T0 + timedelta(seconds=29.9), 30)
    assert outage.steady(T0 + timedelta(seconds=30), 30)
