"""How an attempt's end becomes a job state: the retry and interrupt policy, as data.

Pure: given the job row, the run's result and now, it says which state to record, with
which values and event. The pool writes it, fenced by the attempt number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opsconsole.core.catalog import template_from_dict
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


KNOWN = frozenset(
    {"succeeded", "partial", "failed", "timed_out", "cancelled", "interrupted", "parked"}
)
"""The outcomes a run may end with; anything else is a handler's bug and ends the job failed."""
VANISHED = "worker_vanished"
"""The error kind of an interruption by a worker that died (not one that shut down)."""


def settle(
    row: Mapping[str, Any],
    result: RunResult,
    red: Redactor,
    now: datetime,
    *,
    max_interruptions: int = 3,
) -> Settlement | None:
    """The state an attempt ends in; None for a run the store already gave to another worker.

    A job whose worker vanished is requeued (``on_interrupt: requeue``) at most
    ``max_interruptions`` times in a row: a job that kills its worker each time it runs must
    not take the pool (and every bystander) down forever, so past the cap it ends failed.
    """
    if result.outcome == "lost":
        return None
    if result.outcome not in KNOWN:
        shown = red.text(str(result.outcome))[:40]
        result = RunResult.failed(
            f"the run ended with an unknown outcome {shown!r} "
            f"(one of {', '.join(sorted(KNOWN - {'interrupted', 'parked'}))} was expected)",
            kind="unknown_outcome",
        )
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
    if outcome != "interrupted":
        values["interruptions"] = 0  # the cap counts crashes in a row
    if outcome == "parked":
        return _parked(row, values, now, message)
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
    else:  # interrupted: by a worker that shut down, or one that vanished
        crashed = (result.error or {}).get("kind") == VANISHED
        count = int(row.get("interruptions") or 0) + (1 if crashed else 0)
        values["interruptions"] = count
        if row["on_interrupt"] != "requeue":
            new = S.INTERRUPTED
        elif crashed and count >= max_interruptions:
            new, kind = S.FAILED, "failed"
            message = (
                f"interrupted {count} times in a row, each time because its worker vanished "
                f"while running it: not requeued again (it may be what crashes the worker); "
                f"last: {message}"
            )
            values["error"] = {
                "message": message,
                "kind": "interrupted_repeatedly",
                "detail": {"interruptions": count, "last": values["error"]},
            }
        else:
            new, kind = S.QUEUED, "requeued"
            values["run_at"] = now
    return Settlement(new, values, kind, message[:500])


DEFAULT_EXPIRY_S = 86400.0


def _parked(
    row: Mapping[str, Any], values: dict[str, Any], now: datetime, message: str
) -> Settlement:
    """A Terraform job that planned waits for the approval of its plan: a new gate round.

    Its plan attempt does not count against its retries (``retry_base``); the next claim
    applies the approved plan.
    """
    try:
        policy = template_from_dict(row["spec"]).approval
    except Exception:  # the job's own snapshot: it parsed when it was claimed
        policy = None
    expiry = policy.expires_s if policy is not None and policy.expires_s else DEFAULT_EXPIRY_S
    values.update(
        {
            "gate_round": int(row.get("gate_round") or 0) + 1,
            "approval_expires_at": now + timedelta(seconds=expiry),
            "approved_digest": None,
            "phase": "apply",
            "retry_base": row["attempts"],
            "worker": None,
            "lease_until": None,
            "progress": None,
            "step": None,
        }
    )
    return Settlement(S.AWAITING_APPROVAL, values, None, message[:500])
