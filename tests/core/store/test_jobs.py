"""Job writes: insert + event, the transition table enforced by the store, dependencies,
fenced finishes, cancel requests and priority changes."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa

from opsconsole.core.errors import Conflict, InvalidParams, InvalidTransition
from opsconsole.core.states import FINAL, TRANSITIONS, JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import feed
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import events, jobs

S = JobState
PAIRS = list(itertools.product(JobState, JobState))


def kinds(db, job_id):
    return [e["kind"] for e in feed.job_events(db, job_id)]


def state_of(db, job_id):
    with db.read() as conn:
        return conn.execute(sa.select(jobs.c.state).where(jobs.c.id == job_id)).scalar_one()


def test_insert_writes_the_job_and_its_submitted_event(db, put_job, clock):
    row = put_job(S.QUEUED, id="abc234", priority=10, tags=",a,")
    assert row["id"] == "abc234"
    assert row["state"] == "queued"
    assert row["created_at"] == clock.now()
    [event] = feed.job_events(db, "abc234")
    assert (event["kind"], event["state"], event["actor"]) == ("submitted", "queued", "tester")


def test_insert_with_a_taken_id_is_a_conflict(db, put_job):
    put_job(id="dup234")
    with pytest.raises(Conflict):
        put_job(id="dup234")
    assert kinds(db, "dup234") == ["submitted"]


def test_walk_the_transition_table(db, put_job, clock):
    """Every pair in TRANSITIONS is accepted by the store; every other pair is refused."""
    accepted = refused = 0
    for i, (old, new) in enumerate(PAIRS):
        job_id = put_job(old, id=f"w{i:04d}")["id"]
        with db.write() as conn:
            row = job_store.transition(conn, job_id, new, clock.now(), kind="walked")
        if new in TRANSITIONS[old]:
            assert row is not None, f"{old} -> {new} should be accepted"
            assert row["state"] == new.value
            assert state_of(db, job_id) == new.value
            assert kinds(db, job_id) == ["submitted", "walked"]
            accepted += 1
        else:
            assert row is None, f"{old} -> {new} should be refused"
            assert state_of(db, job_id) == old.value
            assert kinds(db, job_id) == ["submitted"]
            refused += 1
    assert accepted == sum(len(t) for t in TRANSITIONS.values())
    assert accepted + refused == len(JobState) ** 2


def test_transition_or_raise_names_the_current_state(db, put_job, clock):
    put_job(S.SUCCEEDED, id="fin234")
    with pytest.raises(InvalidTransition, match="cannot retry job fin234: it is succeeded"):
        job_store.transition_or_raise(
            db, "fin234", S.QUEUED, clock.now(), kind="retried", verb="retry"
        )
    with pytest.raises(InvalidTransition, match="it is gone"):
        job_store.transition_or_raise(
            db, "nope23", S.QUEUED, clock.now(), kind="retried", verb="retry"
        )


def test_final_transition_drops_secrets_and_lease_and_stamps_finished_at(db, put_job, clock):
    put_job(S.QUEUED, id="sec234", secret_blob="token")
    claimed = claim_store.claim(db, "w1", clock.now(), 30)
    assert claimed["secret_blob"] == "token"
    assert claimed["lease_until"] is not None
    clock.advance(5)
    row = job_store.finish(db, "sec234", 1, S.SUCCEEDED, clock.now(), values={"exit_code": 0})
    assert row["secret_blob"] is None
    assert row["lease_until"] is None
    assert row["finished_at"] == clock.now()
    assert row["exit_code"] == 0


def test_finish_is_fenced_by_the_attempt(db, put_job, clock):
    put_job(S.QUEUED, id="fen234")
    claim_store.claim(db, "w1", clock.now(), 30)
    assert job_store.finish(db, "fen234", 2, S.SUCCEEDED, clock.now(), values={}) is None
    assert state_of(db, "fen234") == "running"
    row = job_store.finish(db, "fen234", 1, S.FAILED, clock.now(), values={}, message="boom")
    assert row["state"] == "failed"
    # a second finish of the same attempt is refused too: the job is no longer running
    assert job_store.finish(db, "fen234", 1, S.SUCCEEDED, clock.now(), values={}) is None
    last = feed.job_events(db, "fen234")[-1]
    assert (last["kind"], last["attempt"], last["message"]) == ("failed", 1, "boom")


def test_finish_only_moves_a_running_job(db, put_job, clock):
    put_job(S.QUEUED, id="nrn234")
    assert job_store.finish(db, "nrn234", 0, S.CANCELLED, clock.now(), values={}) is None
    assert state_of(db, "nrn234") == "queued"


# -- dependencies ---------------------------------------------------------------------


def test_insert_refuses_unknown_and_failed_dependencies(db, put_job):
    put_job(S.FAILED, id="bad234")
    with pytest.raises(InvalidParams, match="'zzz999' does not exist"):
        put_job(S.WAITING, id="kid234", after=("zzz999",))
    with pytest.raises(InvalidParams, match="'bad234' already ended failed"):
        put_job(S.WAITING, id="kid234", after=("bad234",))
    with db.read() as conn:
        assert conn.execute(sa.select(jobs.c.id).where(jobs.c.id == "kid234")).first() is None


def test_insert_waiting_on_dependencies_that_all_succeeded_is_released(db, put_job, clock):
    """The submitter decided 'waiting' before taking the lock; the store re-checks inside it."""
    put_job(S.SUCCEEDED, id="dep234")
    row = put_job(S.WAITING, id="kid234", after=("dep234",))
    assert row["state"] == "queued"
    later = put_job(
        S.WAITING, id="kid235", after=("dep234",), run_at=clock.now().replace(year=2030)
    )
    assert later["state"] == "scheduled"


def test_success_releases_dependents_only_when_all_dependencies_succeeded(db, put_job, clock):
    put_job(S.QUEUED, id="aaa234")
    put_job(S.QUEUED, id="bbb234")
    put_job(S.WAITING, id="ccc234", after=("aaa234", "bbb234"))
    claim_store.claim(db, "w1", clock.now(), 30)
    job_store.finish(db, "aaa234", 1, S.SUCCEEDED, clock.now(), values={})
    assert state_of(db, "ccc234") == "waiting"
    claim_store.claim(db, "w1", clock.now(), 30)
    job_store.finish(db, "bbb234", 1, S.SUCCEEDED, clock.now(), values={})
    assert state_of(db, "ccc234") == "queued"
    assert kinds(db, "ccc234") == ["submitted", "released"]


def test_failure_cancels_dependents_transitively_naming_the_root(db, put_job, clock):
    put_job(S.QUEUED, id="aaa234")
    put_job(S.WAITING, id="bbb234", after=("aaa234",))
    put_job(S.WAITING, id="ccc234", after=("bbb234",))
    claim_store.claim(db, "w1", clock.now(), 30)
    job_store.finish(db, "aaa234", 1, S.FAILED, clock.now(), values={})
    for job_id in ("bbb234", "ccc234"):
        row, _ = _get(db, job_id)
        assert row["state"] == "cancelled"
        assert row["error"]["kind"] == "dependency"
        assert "aaa234" in row["error"]["message"]
        assert "aaa234" in feed.job_events(db, job_id)[-1]["message"]
    row, _ = _get(db, "ccc234")
    assert row["error"]["detail"]["job"] == "bbb234"


def _get(db, job_id):
    with db.read() as conn:
        return job_store.fetch(conn, job_id), job_store.dependencies_of(conn, job_id)


def test_add_dependencies_moves_a_queued_job_to_waiting(db, put_job, clock):
    put_job(S.QUEUED, id="aaa234")
    put_job(S.QUEUED, id="bbb234")
    row = job_store.add_dependencies(db, "bbb234", ["aaa234"], actor="op", now=clock.now())
    assert row["state"] == "waiting"
    assert row["depends_on"] == ["aaa234"]
    assert _get(db, "bbb234")[1] == ["aaa234"]
    assert kinds(db, "bbb234") == ["submitted", "dependency_added"]


def test_add_dependencies_on_a_succeeded_job_keeps_the_job_ready(db, put_job, clock):
    put_job(S.SUCCEEDED, id="aaa234")
    put_job(S.QUEUED, id="bbb234")
    row = job_store.add_dependencies(db, "bbb234", ["aaa234"], actor="op", now=clock.now())
    assert row["state"] == "queued"
    assert row["depends_on"] == ["aaa234"]


def test_add_dependencies_refuses_cycles_self_and_finished_jobs(db, put_job, clock):
    put_job(S.QUEUED, id="aaa234")
    put_job(S.QUEUED, id="bbb234")
    put_job(S.QUEUED, id="ccc234")
    put_job(S.CANCELLED, id="ddd234")
    put_job(S.SUCCEEDED, id="eee234")
    now = clock.now()
    job_store.add_dependencies(db, "aaa234", ["bbb234"], actor="op", now=now)
    job_store.add_dependencies(db, "bbb234", ["ccc234"], actor="op", now=now)
    with pytest.raises(InvalidParams, match="cycle"):
        job_store.add_dependencies(db, "ccc234", ["aaa234"], actor="op", now=now)
    with pytest.raises(InvalidParams, match="cycle"):
        job_store.add_dependencies(db, "ccc234", ["ccc234"], actor="op", now=now)
    with pytest.raises(InvalidParams, match="already ended cancelled"):
        job_store.add_dependencies(db, "ccc234", ["ddd234"], actor="op", now=now)
    with pytest.raises(InvalidTransition, match="it is succeeded"):
        job_store.add_dependencies(db, "eee234", ["ccc234"], actor="op", now=now)
    assert state_of(db, "ccc234") == "queued"


# -- cancel and priority ------------------------------------------------------------------


def test_request_cancel_of_a_pending_job_cancels_at_once(db, put_job, clock):
    put_job(S.SCHEDULED, id="aaa234")
    row = job_store.request_cancel(db, "aaa234", reason="", actor="op", now=clock.now())
    assert row["state"] == "cancelled"
    assert row["error"] == {
        "message": "cancelled by op",
        "kind": "cancelled",
        "detail": {"by": "op"},
    }
    assert feed.job_events(db, "aaa234")[-1]["kind"] == "cancelled"


def test_request_cancel_of_a_running_job_asks_its_worker(db, put_job, clock):
    put_job(S.QUEUED, id="aaa234")
    claim_store.claim(db, "w1", clock.now(), 30)
    row = job_store.request_cancel(db, "aaa234", reason="wrong host", actor="op", now=clock.now())
    assert row["state"] == "running"
    assert row["cancel_requested"] is True
    assert row["cancel_reason"] == "wrong host"
    # asking twice writes one event
    job_store.request_cancel(db, "aaa234", reason="again", actor="op", now=clock.now())
    assert kinds(db, "aaa234") == ["submitted", "started", "cancel_requested"]


@pytest.mark.parametrize("state", sorted(FINAL))
def test_request_cancel_of_a_final_job_is_refused(db, put_job, clock, state):
    put_job(state, id="fin234")
    with pytest.raises(InvalidTransition, match=f"it is {state.value}"):
        job_store.request_cancel(db, "fin234", reason="", actor="op", now=clock.now())
    assert state_of(db, "fin234") == state.value


def test_set_priority_only_before_the_job_starts(db, put_job, clock):
    put_job(S.QUEUED, id="aaa234")
    row = job_store.set_priority(db, "aaa234", 15, actor="op", now=clock.now())
    assert row["priority"] == 15
    last = feed.job_events(db, "aaa234")[-1]
    assert (last["kind"], last["data"]) == ("priority_changed", {"priority": 15})
    put_job(S.RUNNING, id="bbb234")
    with pytest.raises(InvalidTransition, match="it is running"):
        job_store.set_priority(db, "bbb234", 1, actor="op", now=clock.now())


def test_every_state_change_writes_exactly_one_event(db, put_job, clock):
    put_job(S.QUEUED, id="aaa234")
    claim_store.claim(db, "w1", clock.now(), 30)
    job_store.finish(db, "aaa234", 1, S.SUCCEEDED, clock.now(), values={})
    with db.read() as conn:
        rows = conn.execute(
            sa.select(events.c.kind, events.c.state, events.c.attempt)
            .where(events.c.job_id == "aaa234")
            .order_by(events.c.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("submitted", "queued", None),
        ("started", "running", 1),
        ("succeeded", "succeeded", 1),
    ]
