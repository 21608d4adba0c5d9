"""The state table itself: live/final partition, helpers derived from the table."""

from __future__ import annotations

import pytest

from opsconsole.core.states import (
    CLAIMABLE,
    FINAL,
    INITIAL,
    LIVE,
    PENDING,
    RETRYABLE,
    TRANSITIONS,
    JobState,
    can_cancel,
    can_retry,
    can_transition,
    sources_of,
)

S = JobState


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
            assert targets == {S.QUEUED}, state
        else:
            assert targets == frozenset(), state


def test_no_state_moves_to_itself():
    for state, targets in TRANSITIONS.items():
        assert state not in targets


@pytest.mark.parametrize("state", list(JobState))
def test_can_cancel_exactly_the_live_states(state):
    assert can_cancel(state) is (state in LIVE)


@pytest.mark.parametrize("state", list(JobState))
def test_can_retry_exactly_the_retryable_states(state):
    assert can_retry(state) is (state in {S.FAILED, S.TIMED_OUT, S.CANCELLED, S.INTERRUPTED})


def test_sources_of_inverts_the_table():
    for new in JobState:
        for old in JobState:
            assert (old in sources_of(new)) is can_transition(old, new)
    assert sources_of(S.RUNNING) == {S.QUEUED, S.SCHEDULED}
    assert sources_of(S.AWAITING_APPROVAL) == {S.RUNNING}
    assert sources_of(S.REJECTED) == {S.AWAITING_APPROVAL}


def test_states_are_plain_strings():
    assert S.TIMED_OUT == "timed_out"
    assert JobState("awaiting_approval") is S.AWAITING_APPROVAL
