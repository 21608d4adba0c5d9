"""Job states and the one transition table the store enforces.

A transition not listed here is refused by the store (``InvalidTransition``); the test
suite walks the whole table.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"
    """Gated: waits for an approver before it can run."""
    WAITING = "waiting"
    """Waits for the jobs it depends on to succeed."""
    SCHEDULED = "scheduled"
    """Runs at ``run_at`` (a future run, or a retry after backoff)."""
    QUEUED = "queued"
    """Ready; the next free worker slot claims it by priority, then age."""
    RUNNING = "running"
    """Claimed by a worker slot, which holds a lease and heartbeats."""
    SUCCEEDED = "succeeded"
    """Finished and did everything it was asked to."""
    PARTIAL = "partial"
    """Finished with a partial success: some of the work failed, the rest succeeded."""
    FAILED = "failed"
    """Finished with an error and no attempts left."""
    TIMED_OUT = "timed_out"
    """Stopped because it ran past its timeout, with no attempts left."""
    CANCELLED = "cancelled"
    """Cancelled by an operator, or because a dependency did not succeed."""
    REJECTED = "rejected"
    """An approver refused to let it run."""
    INTERRUPTED = "interrupted"
    """Its worker vanished while it ran (``on_interrupt: mark``)."""


S = JobState

LIVE: frozenset[JobState] = frozenset(
    {S.AWAITING_APPROVAL, S.WAITING, S.SCHEDULED, S.QUEUED, S.RUNNING}
)
FINAL: frozenset[JobState] = frozenset(
    {S.SUCCEEDED, S.PARTIAL, S.FAILED, S.TIMED_OUT, S.CANCELLED, S.REJECTED, S.INTERRUPTED}
)
PENDING: frozenset[JobState] = LIVE - {S.RUNNING}
"""Live but not running: what the queue shows."""
INITIAL: frozenset[JobState] = frozenset({S.AWAITING_APPROVAL, S.WAITING, S.SCHEDULED, S.QUEUED})
"""The states a job may be submitted into."""
CLAIMABLE: frozenset[JobState] = frozenset({S.QUEUED, S.SCHEDULED})
"""A scheduled job whose run time has come is claimed directly: one statement per claim."""
RETRYABLE: frozenset[JobState] = frozenset({S.FAILED, S.TIMED_OUT, S.CANCELLED, S.INTERRUPTED})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.AWAITING_APPROVAL: frozenset({S.QUEUED, S.WAITING, S.SCHEDULED, S.REJECTED, S.CANCELLED}),
    S.WAITING: frozenset({S.QUEUED, S.SCHEDULED, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.QUEUED, S.WAITING, S.RUNNING, S.CANCELLED}),
    S.QUEUED: frozenset({S.WAITING, S.SCHEDULED, S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset(
        {
            S.SUCCEEDED,
            S.PARTIAL,
            S.FAILED,
            S.TIMED_OUT,
            S.CANCELLED,
            S.INTERRUPTED,
            S.SCHEDULED,  # a retry after backoff
            S.QUEUED,  # requeued after its worker vanished (on_interrupt: requeue)
            S.AWAITING_APPROVAL,  # a plan parks for approval before its apply
        }
    ),
    S.SUCCEEDED: frozenset(),
    S.PARTIAL: frozenset(),
    S.FAILED: frozenset({S.QUEUED}),
    S.TIMED_OUT: frozenset({S.QUEUED}),
    S.CANCELLED: frozenset({S.QUEUED}),
    S.REJECTED: frozenset(),
    S.INTERRUPTED: frozenset({S.QUEUED}),
}


def can_transition(old: JobState, new: JobState) -> bool:
    return new in TRANSITIONS[old]


def can_cancel(state: JobState) -> bool:
    return S.CANCELLED in TRANSITIONS[state]


def can_retry(state: JobState) -> bool:
    return state in RETRYABLE


def sources_of(new: JobState) -> frozenset[JobState]:
    """Every state that may move to ``new``: the guard of a transition's UPDATE."""
    return frozenset(old for old, targets in TRANSITIONS.items() if new in targets)
