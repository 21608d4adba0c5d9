"""How an attempt's end becomes a job state: the retry and interrupt policy, as data.

Pure: given the job row, the run's result and now, it says which state to record, with
which values and event. The pool writes it, fenced by the attempt number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsconsole.core.retry import next_attempt_at
from opsconsole.core.secrets import Redactor
from opsconsole.core.states import JobState
from opsconsole.engine.context import RunResult

S = JobState


@dataclass(frozen=True)
class Settlement:
    state: JobState
    values: dict[str, Any]
    kind: str | None
    """The event to record; None means the state's own name."""
    message: str


def settle(
    row: Mapping[str, Any], result: RunResult, red: Redactor, now: datetime
) -> Settlement | None:
    """The state an attempt ends in; None for a run the store already gave to another worker."""
    attempt = row["attempts"]
    values: dict[str, Any] = {
        "exit_code": result.exit_code,
        "result": red.value(result.result),
        "error": red.value(result.error) if result.error else None,
        "pid": None,
    }
    kind = None
    message = red.text(result.message or (result.error or {}).get("message", "") or "")
    outcome = result.outcome
    if outcome == "succeeded":
        new = S.SUCCEEDED
        values["progress"] = 100
    elif outcome == "partial":
        new = S.PARTIAL
    elif outcome in ("failed", "timed_out"):
        failures = attempt - row.get("retry_base", 0)
        if failures <= row["max_retries"]:
            new, kind = S.SCHEDULED, "retried"
            when = next_attempt_at(now, failures, row["backoff_s"])
            values["run_at"] = when
            delay = (when - now).total_seconds()
            what = outcome.replace("_", " ")
            message = f"attempt {attempt} {what}: {message}; retry in {delay:.1f}s"
        else:
            new = S.FAILED if outcome == "failed" else S.TIMED_OUT
    elif outcome == "cancelled":
        new = S.CANCELLED
    elif outcome == "interrupted":
        if row["on_interrupt"] == "requeue":
            new, kind = S.QUEUED, "requeued"
            values["run_at"] = now
        else:
            new = S.INTERRUPTED
    else:
        return None
    return Settlement(new, values, kind, message[:500])
