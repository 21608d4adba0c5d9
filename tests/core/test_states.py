"""The state table itself: live/final partition, the verb table, helpers derived from them."""

from __future__ import annotations

import ast
import inspect

import pytest

from opsconsole.core import states
from opsconsole.core.states import (
    CLAIMABLE,
    ENDINGS,
    EVENTS,
    FINAL,
    INITIAL,
    KEEPS,
    LIVE,
    MOVES,
    PENDING,
    RETRYABLE,
    TRANSITIONS,
    JobState,
    Verb,
    allows,
    can_cancel,
    can_retry,
    can_transition,
    sources,
    sources_of,
    targets,
)

S = JobState
V = Verb


def test_live_and_final_partition_every_state():
    assert set(JobState) == LIVE | FINAL
    assert not LIVE & FINAL
    assert set(TRANSITIONS) == set(JobState)


def test_derived_sets():
    assert {S.AWAITING_APPROVAL, S.WAITING, S.SCHEDULED, S.QUEUED} == PENDING
    assert INITIAL <= LIVE
    assert S.RUNNING not in INITIAL
    assert {S.QUEUED, S.SCHEDULED} == CLAIMABLE
    assert RETRYABLE <= FINAL


def test_final_states_only_leave_by_a_retry():
    for state in FINAL:
        targets = TRANSITIONS[state]
        if state in RETRYABLE:
            assert targets == {S.QUEUED, S.AWAITING_APPROVAL}, state  # gated: a new approval
        else:
            assert targets == frozenset(), state


def test_no_state_moves_to_itself():
    for state, news in TRANSITIONS.items():
        assert state not in news


@pytest.mark.parametrize("state", list(JobState))
def test_can_cancel_exactly_the_live_states_but_a_request_awaiting_approval(state):
    """A request awaiting approval is withdrawn (a rejection) or rejected, never cancelled."""
    assert can_cancel(state) is (state in LIVE - {S.AWAITING_APPROVAL})


@pytest.mark.parametrize("state", list(JobState))
def test_can_retry_exactly_the_retryable_states(state):
    retryable = {S.FAILED, S.TIMED_OUT, S.CANCELLED, S.INTERRUPTED, S.PARTIAL}
    assert can_retry(state) is (state in retryable)
    assert can_retry(state) is (state in RETRYABLE)


def test_a_partial_job_can_be_retried_but_a_live_one_never():
    assert can_retry(S.PARTIAL)
    assert S.QUEUED in TRANSITIONS[S.PARTIAL]
    assert not any(can_retry(s) for s in LIVE)
    assert sources(V.RETRY) == RETRYABLE


def test_sources_of_inverts_the_table():
    for new in JobState:
        for old in JobState:
            assert (old in sources_of(new)) is can_transition(old, new)
    assert sources_of(S.RUNNING) == {S.QUEUED, S.SCHEDULED}
    assert sources_of(S.AWAITING_APPROVAL) == {S.RUNNING} | RETRYABLE
    assert sources_of(S.REJECTED) == {S.AWAITING_APPROVAL}


def test_states_are_plain_strings():
    assert S.TIMED_OUT == "timed_out"
    assert JobState("awaiting_approval") is S.AWAITING_APPROVAL


# -- the verbs ------------------------------------------------------------------------------


def test_each_verb_names_exactly_its_moves():
    """The issue's list, spelled out: a change here is a change of what operators can do."""
    assert MOVES[V.SUBMIT] == frozenset()
    assert sources(V.CLAIM) == {S.QUEUED, S.SCHEDULED}
    assert {(o, n) for o, n in MOVES[V.CLAIM]} == {(S.QUEUED, S.RUNNING), (S.SCHEDULED, S.RUNNING)}
    assert MOVES[V.FINISH] == {(S.RUNNING, n) for n in ENDINGS}
    assert (FINAL - {S.REJECTED}) | {S.SCHEDULED} == ENDINGS
    assert MOVES[V.REQUEUE] == {(S.RUNNING, S.QUEUED)}
    assert MOVES[V.RETRY] == {(o, n) for o in RETRYABLE for n in (S.QUEUED, S.AWAITING_APPROVAL)}
    assert MOVES[V.CANCEL] == {(o, S.CANCELLED) for o in PENDING - {S.AWAITING_APPROVAL}}
    assert KEEPS[V.CANCEL] == {S.RUNNING}
    assert MOVES[V.RELEASE] == {(S.WAITING, S.QUEUED), (S.WAITING, S.SCHEDULED)}
    assert MOVES[V.WAIT] == {(S.QUEUED, S.WAITING), (S.SCHEDULED, S.WAITING)}
    assert KEEPS[V.WAIT] == PENDING
    assert MOVES[V.REPRIORITISE] == frozenset()
    assert KEEPS[V.REPRIORITISE] == PENDING
    assert MOVES[V.APPROVE] == {
        (S.AWAITING_APPROVAL, S.QUEUED),
        (S.AWAITING_APPROVAL, S.SCHEDULED),
        (S.AWAITING_APPROVAL, S.WAITING),
    }
    assert MOVES[V.REJECT] == {(S.AWAITING_APPROVAL, S.REJECTED)}
    assert MOVES[V.PARK] == {(S.RUNNING, S.AWAITING_APPROVAL)}
    assert MOVES[V.BREAK_GLASS] == {
        (S.AWAITING_APPROVAL, S.QUEUED),
        (S.AWAITING_APPROVAL, S.SCHEDULED),
        (S.AWAITING_APPROVAL, S.WAITING),
    }


def test_the_transition_table_is_the_union_of_the_verbs():
    every = {move for moves in MOVES.values() for move in moves}
    assert every == {(old, new) for old, news in TRANSITIONS.items() for new in news}
    assert all(old != new for old, new in every)  # staying put is a KEEP, never a move


def test_only_the_approvers_verbs_move_a_job_out_of_awaiting_approval():
    """No path (a retry, a requeue, a release, a claim) takes a gated job past its gate:
    approve and break-glass open it, reject (and expire and a withdrawal, which are rejects)
    ends it; cancel does not act on it at all."""
    leave = {verb: {new for old, new in MOVES[verb] if old == S.AWAITING_APPROVAL} for verb in Verb}
    assert {verb for verb, news in leave.items() if news} == {V.APPROVE, V.REJECT, V.BREAK_GLASS}
    assert leave[V.REJECT] == {S.REJECTED}
    assert S.AWAITING_APPROVAL not in sources(V.CANCEL)
    live = {verb for verb, news in leave.items() if news & LIVE}
    assert live == {V.APPROVE, V.BREAK_GLASS}
    for verb in Verb:  # a verb that keeps it leaves it awaiting approval
        assert targets(verb, S.AWAITING_APPROVAL) <= {S.AWAITING_APPROVAL} | leave[verb]


def test_no_verb_moves_a_running_job_except_the_workers_own():
    """Only the verbs a worker (or the reaper for it) uses take a job out of running."""
    leave_running = {verb for verb, moves in MOVES.items() if any(o == S.RUNNING for o, _ in moves)}
    assert leave_running == {V.FINISH, V.REQUEUE, V.PARK}


@pytest.mark.parametrize("verb", list(Verb))
def test_allows_sources_and_targets_agree(verb):
    for old in JobState:
        for new in JobState:
            assert allows(verb, old, new) is (new in targets(verb, old))
            if old != new:
                assert allows(verb, old, new) is (old in sources(verb, new))
        assert (old in sources(verb)) is bool(targets(verb, old))


def test_every_verb_has_an_event_and_a_docstring():
    assert set(EVENTS) == set(Verb) == set(MOVES) == set(KEEPS)
    documented = _documented_members(Verb)
    assert documented == {v.name for v in Verb}
    assert _documented_members(JobState) == {s.name for s in JobState}


def _documented_members(cls: type) -> set[str]:
    """Members of an enum in states.py followed by an attribute docstring."""
    tree = ast.parse(inspect.getsource(states))
    [node] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__]
    out: set[str] = set()
    for first, second in zip(node.body, node.body[1:], strict=False):
        if (
            isinstance(first, ast.Assign)
            and isinstance(second, ast.Expr)
            and isinstance(second.value, ast.Constant)
            and isinstance(second.value.value, str)
            and second.value.value.strip()
        ):
            out.update(t.id for t in first.targets if isinstance(t, ast.Name))
    return out
