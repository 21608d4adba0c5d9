"""Job states, the verbs that move a job between them, and the transition table.

This is the only place that says which action may take a job from which state to which:
each verb names its own (from, to) moves, the store checks them in the WHERE clause of the
UPDATE that changes the row, and the transition table is derived from the verbs. The test
suite walks every verb against every state.
"""

from __future__ import annotations

from collections.abc import Iterable
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
RETRYABLE: frozenset[JobState] = frozenset(
    {S.FAILED, S.TIMED_OUT, S.CANCELLED, S.INTERRUPTED, S.PARTIAL}
)
"""Final states an operator may start again; a partial job did some of its work wrong."""
ENDINGS: frozenset[JobState] = (FINAL - {S.REJECTED}) | {S.SCHEDULED}
"""Where an attempt ends: a final state, or ``scheduled`` for a retry after backoff."""


class Verb(StrEnum):
    """An action on a job. One word per concept: the method, the event and the key agree."""

    SUBMIT = "submit"
    """Create a job in its first state: awaiting approval, waiting, scheduled or queued."""
    CLAIM = "claim"
    """A worker slot takes a ready queued or scheduled job: it runs, with a new attempt."""
    FINISH = "finish"
    """The worker records how an attempt ended: a final state, or scheduled for a retry."""
    REQUEUE = "requeue"
    """Queue a running job again because its worker vanished (``on_interrupt: requeue``)."""
    RETRY = "retry"
    """An operator starts a job that ended badly again: failed, timed out, cancelled,
    interrupted or partial. Never a live job: that would fence off its worker. A gated job
    goes back to awaiting approval: a new attempt needs a new approval."""
    CANCEL = "cancel"
    """Cancel a pending job at once; ask the worker of a running one to stop it (the job
    stays running, with ``cancel_requested``, until the worker finishes it cancelled)."""
    RELEASE = "release"
    """A waiting job whose dependencies all succeeded becomes queued (or scheduled)."""
    WAIT = "wait"
    """A pending job takes more dependencies; a queued or scheduled one then waits for them."""
    REPRIORITISE = "reprioritise"
    """Change the priority of a job that has not started; its state stays."""
    APPROVE = "approve"
    """An approver lets a gated job go on: queued, scheduled, or waiting on dependencies."""
    REJECT = "reject"
    """An approver refuses a gated job: it ends rejected."""
    PARK = "park"
    """A running job stops to wait for an approval (a Terraform plan before its apply)."""
    BREAK_GLASS = "break_glass"
    """An operator runs a gated job now, with a reason, where its template allows it; the job
    is marked and another person must acknowledge the review it leaves."""


V = Verb
Move = tuple[JobState, JobState]


def _moves(sources: Iterable[JobState], targets: Iterable[JobState]) -> frozenset[Move]:
    return frozenset((old, new) for old in sources for new in targets)


MOVES: dict[Verb, frozenset[Move]] = {
    V.SUBMIT: frozenset(),  # no row to move from: see ``INITIAL``
    V.CLAIM: _moves(CLAIMABLE, {S.RUNNING}),
    V.FINISH: _moves({S.RUNNING}, ENDINGS),
    V.REQUEUE: _moves({S.RUNNING}, {S.QUEUED}),
    V.RETRY: _moves(RETRYABLE, {S.QUEUED, S.AWAITING_APPROVAL}),  # gated: a new approval
    # a request awaiting approval is decided, not cancelled: its submitter withdraws it (a
    # rejection), anyone else rejects it
    V.CANCEL: _moves(PENDING - {S.AWAITING_APPROVAL}, {S.CANCELLED}),
    V.RELEASE: _moves({S.WAITING}, {S.QUEUED, S.SCHEDULED}),
    V.WAIT: _moves({S.QUEUED, S.SCHEDULED}, {S.WAITING}),
    V.REPRIORITISE: frozenset(),
    V.APPROVE: _moves({S.AWAITING_APPROVAL}, {S.QUEUED, S.SCHEDULED, S.WAITING}),
    V.REJECT: _moves({S.AWAITING_APPROVAL}, {S.REJECTED}),
    V.PARK: _moves({S.RUNNING}, {S.AWAITING_APPROVAL}),
    V.BREAK_GLASS: _moves({S.AWAITING_APPROVAL}, {S.QUEUED, S.SCHEDULED, S.WAITING}),
}
"""Each verb's (from, to) state changes; nothing else may change a job's state."""

KEEPS: dict[Verb, frozenset[JobState]] = {
    **{verb: frozenset() for verb in Verb},
    V.CANCEL: frozenset({S.RUNNING}),  # cancel_requested: the worker stops it
    V.WAIT: PENDING,  # more dependencies; a queued job whose new ones all succeeded stays
    V.REPRIORITISE: PENDING,
}
"""The states in which a verb acts on a job without changing its state."""

EVENTS: dict[Verb, str] = {
    V.SUBMIT: "submitted",
    V.CLAIM: "started",
    V.FINISH: "finished",  # written as the final state's name, or ``retried``
    V.REQUEUE: "requeued",
    V.RETRY: "retried",
    V.CANCEL: "cancelled",  # ``cancel_requested`` for a running job
    V.RELEASE: "released",
    V.WAIT: "dependency_added",
    V.REPRIORITISE: "priority_changed",
    V.APPROVE: "approved",
    V.REJECT: "rejected",
    V.PARK: "parked",
    V.BREAK_GLASS: "break_glass",
}
"""The past-tense event each verb writes in the same transaction as its change."""


def _table() -> dict[JobState, frozenset[JobState]]:
    return {
        old: frozenset(new for moves in MOVES.values() for (src, new) in moves if src == old)
        for old in JobState
    }


TRANSITIONS: dict[JobState, frozenset[JobState]] = _table()
"""Every state change any verb makes, by source state (derived from ``MOVES``)."""


def can_transition(old: JobState, new: JobState) -> bool:
    return new in TRANSITIONS[old]


def allows(verb: Verb, old: JobState, new: JobState) -> bool:
    """May ``verb`` take a job in ``old`` to ``new``? (Staying put counts when it ``KEEPS``.)"""
    if old == new:
        return old in KEEPS[verb]
    return (old, new) in MOVES[verb]


def sources(verb: Verb, new: JobState | None = None) -> frozenset[JobState]:
    """The states ``verb`` acts from; with ``new``, those it moves to ``new``: a WHERE guard."""
    if new is not None:
        return frozenset(old for old, to in MOVES[verb] if to == new)
    return frozenset(old for old, _ in MOVES[verb]) | KEEPS[verb]


def targets(verb: Verb, old: JobState) -> frozenset[JobState]:
    """Where ``verb`` may take a job that is ``old`` (``old`` itself when it keeps it)."""
    moved = frozenset(new for src, new in MOVES[verb] if src == old)
    return moved | {old} if old in KEEPS[verb] else moved


def can_cancel(state: JobState) -> bool:
    return state in sources(V.CANCEL)


def can_retry(state: JobState) -> bool:
    return state in sources(V.RETRY)


def sources_of(new: JobState) -> frozenset[JobState]:
    """Every state some verb may move to ``new``."""
    return frozenset(old for old, targets in TRANSITIONS.items() if new in targets)
