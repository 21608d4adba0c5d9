"""The end-of-attempt policy: which state an outcome becomes, with retries and interrupts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsconsole.core.secrets import Redactor
from opsconsole.core.states import JobState
from opsconsole.engine.context import RunResult
from opsconsole.engine.outcome import settle

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def row(**kw):
    base = {
        "id": "j1",
        "attempts": 1,
        "retry_base": 0,
        "max_retries": 0,
        "backoff_s": 10.0,
        "on_interrupt": "mark",
    }
    return {**base, **kw}


@pytest.mark.parametrize(
    ("outcome", "state"),
    [
        ("succeeded", JobState.SUCCEEDED),
        ("partial", JobState.PARTIAL),
        ("failed", JobState.FAILED),
        ("timed_out", JobState.TIMED_OUT),
        ("cancelled", JobState.CANCELLED),
        ("interrupted", JobState.INTERRUPTED),
    ],
)
def test_each_outcome_without_retries_left(outcome: str, state: JobState) -> None:
    end = settle(row(), RunResult(outcome=outcome), Redactor(), NOW)
    assert end is not None
    assert end.state == state


def test_a_failure_with_retries_left_is_scheduled_after_backoff() -> None:
    end = settle(row(attempts=2, max_retries=2), RunResult.failed("boom"), Redactor(), NOW)
    assert end is not None
    assert end.state == JobState.SCHEDULED and end.kind == "retried"
    delay = end.values["run_at"] - NOW
    assert timedelta(seconds=16) <= delay <= timedelta(seconds=24)  # 10 * 2^1, +/-20 %
    assert "attempt 2 failed: boom; retry in" in end.message


def test_retries_count_from_the_last_manual_retry() -> None:
    end = settle(
        row(attempts=5, retry_base=4, max_retries=1), RunResult.failed("x"), Redactor(), NOW
    )
    assert end is not None and end.state == JobState.SCHEDULED
    end = settle(
        row(attempts=6, retry_base=4, max_retries=1), RunResult.failed("x"), Redactor(), NOW
    )
    assert end is not None and end.state == JobState.FAILED


def test_an_interrupted_requeue_job_goes_back_to_the_queue_now() -> None:
    end = settle(row(on_interrupt="requeue"), RunResult(outcome="interrupted"), Redactor(), NOW)
    assert end is not None
    assert (end.state, end.kind, end.values["run_at"]) == (JobState.QUEUED, "requeued", NOW)


def test_a_lost_run_records_nothing() -> None:
    assert settle(row(), RunResult(outcome="lost"), Redactor(), NOW) is None


def test_results_and_errors_are_redacted() -> None:
    res = RunResult(
        outcome="failed",
        result={"token": "hunter2-xyz"},
        error={"message": "bad token hunter2-xyz", "kind": "auth"},
        message="bad token hunter2-xyz",
    )
    end = settle(row(), res, Redactor(["hunter2-xyz"]), NOW)
    assert end is not None
    assert "hunter2-xyz" not in repr(end)
    assert end.values["result"] == {"token": "***"}
