"""Backoff math (doubling, jitter, cap) and the retry policy applied when an attempt fails."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support import write_template

from opsconsole.core.retry import JITTER, MAX_BACKOFF_S, backoff_delay, next_attempt_at
from opsconsole.core.service import SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.engine.context import RunResult
from opsconsole.engine.pool import WorkerPool

S = JobState


@pytest.mark.parametrize(
    ("failures", "expected"), [(1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (10, 2560.0)]
)
def test_backoff_doubles_per_failure(failures, expected):
    assert backoff_delay(failures, 5.0, rand=0.5) == pytest.approx(expected)


def test_no_failures_no_delay():
    assert backoff_delay(0, 5.0, rand=1.0) == 0.0
    assert backoff_delay(-3, 5.0) == 0.0


def test_jitter_bounds():
    assert JITTER == 0.2
    assert backoff_delay(3, 5.0, rand=0.0) == pytest.approx(16.0)
    assert backoff_delay(3, 5.0, rand=1.0) == pytest.approx(24.0)
    samples = [backoff_delay(3, 5.0) for _ in range(500)]
    assert all(16.0 <= s <= 24.0 for s in samples)
    assert max(samples) - min(samples) > 4.0  # it really spreads


def test_the_cap_bounds_every_delay():
    assert backoff_delay(12, 5.0, rand=0.5) == MAX_BACKOFF_S
    assert backoff_delay(12, 5.0, rand=1.0) == MAX_BACKOFF_S
    assert backoff_delay(12, 5.0, rand=0.0) == pytest.approx(MAX_BACKOFF_S * 0.8)
    # an absurd failure count is still just the cap, not an overflow
    assert backoff_delay(5000, 5.0, rand=0.5) == MAX_BACKOFF_S


def test_next_attempt_at(clock):
    assert next_attempt_at(clock.now(), 2, 30.0, rand=0.5) == clock.now() + timedelta(seconds=60)


# -- the policy, applied by the pool when an attempt ends ------------------------------------


@pytest.fixture
def flaky(catalog):
    write_template(
        catalog, "flaky", "runner: shell\ncommand: [echo, x]\nretries: 2\nbackoff: 10s\n"
    )
    return "flaky"


@pytest.fixture
def pool(clocked):
    return WorkerPool(clocked, slots=1, use_scheduler=False)


def fail_next(svc, pool, outcome="failed"):
    row = claim_store.claim(svc.db, pool.id, svc.now(), 30)
    assert row is not None
    result = RunResult.failed("exit 1") if outcome == "failed" else RunResult(outcome=outcome)
    pool.record(dict(row), result)
    return row["attempts"], svc.get(row["id"], with_events=True)


def assert_backs_off(svc, view, low, high):
    delay = (view.run_at - svc.now()).total_seconds()
    assert low <= delay <= high, delay
    assert view.state == S.SCHEDULED
    assert view.events[-1].kind == "retried"
    assert view.events[-1].state == "scheduled"
    return delay


def test_failures_retry_after_backoff_until_the_retries_run_out(clocked, flaky, pool, clock):
    job = clocked.submit(SubmitRequest(template="flaky"))
    assert job.max_retries == 2

    attempt, view = fail_next(clocked, pool)
    assert attempt == 1
    delay = assert_backs_off(clocked, view, 8.0, 12.0)
    assert "attempt 1 failed: exit 1; retry in" in view.events[-1].message
    assert claim_store.claim(clocked.db, pool.id, clock.now(), 30) is None
    clock.advance(delay - 0.01)
    assert claim_store.claim(clocked.db, pool.id, clock.now(), 30) is None
    clock.advance(0.01)

    attempt, view = fail_next(clocked, pool)
    assert attempt == 2
    delay = assert_backs_off(clocked, view, 16.0, 24.0)
    clock.advance(delay)

    attempt, view = fail_next(clocked, pool)
    assert attempt == 3
    assert view.state == S.FAILED
    assert view.error["message"] == "exit 1"
    assert [e.kind for e in view.events].count("retried") == 2
    assert list(pool.outcomes) == [(job.id, "scheduled"), (job.id, "scheduled"), (job.id, "failed")]

    # a manual retry starts the automatic retries afresh (retry_base)
    clock.advance(60)
    assert clocked.retry(job.id).state == S.QUEUED
    attempt, view = fail_next(clocked, pool)
    assert attempt == 4
    assert_backs_off(clocked, view, 8.0, 12.0)


def test_a_timeout_without_retries_left_ends_timed_out(clocked, echo, pool):
    job = clocked.submit(SubmitRequest(template="echo"))
    assert job.max_retries == 0
    _, view = fail_next(clocked, pool, outcome="timed_out")
    assert view.state == S.TIMED_OUT


def test_retries_from_the_request_override_the_template(clocked, echo, pool):
    clocked.submit(SubmitRequest(template="echo", retries=1))
    _, view = fail_next(clocked, pool, outcome="timed_out")
    assert view.state == S.SCHEDULED
    assert "attempt 1 timed out" in view.events[-1].message
