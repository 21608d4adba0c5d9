"""Job writes: insert + event, the transition table enforced by the store, dependencies,
fenced finishes, cancel requests and priority changes."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from opsconsole.core.errors import Conflict, InvalidParams, InvalidTransition
from opsconsole.core.states import EVENTS, FINAL, INITIAL, KEEPS, JobState, Verb, allows, targets
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import feed
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database, events, jobs

S = JobState
V = Verb
LATER = datetime(2030, 1, 1, tzinfo=UTC)


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


def test_transition_or_raise_names_the_verb_and_the_current_state(db, put_job, clock):
    put_job(S.SUCCEEDED, id="fin234")
    with pytest.raises(InvalidTransition, match="cannot retry job fin234: it is succeeded"):
        job_store.transition_or_raise(db, "fin234", S.QUEUED, clock.now(), verb=V.RETRY)
    with pytest.raises(InvalidTransition, match="it is gone"):
        job_store.transition_or_raise(db, "nope23", S.QUEUED, clock.now(), verb=V.RETRY)


def test_transition_refuses_a_move_its_verb_does_not_name(db, put_job, clock):
    """running -> queued is in the table (a requeue) but never a retry."""
    put_job(S.QUEUED, id="run234")
    claim_store.claim(db, "w1", clock.now(), 30)
    with db.write() as conn:
        assert job_store.transition(conn, "run234", S.QUEUED, clock.now(), verb=V.RETRY) is None
        assert job_store.transition(conn, "run234", S.QUEUED, clock.now(), verb=V.REQUEUE)
    assert kinds(db, "run234") == ["submitted", "started", "requeued"]


def test_finish_reads_its_new_state_as_the_verb(db, put_job, clock):
    """The engine's one call: queued requeues, awaiting_approval parks, the rest finish."""
    for job_id, new, kind in [
        ("prk234", S.AWAITING_APPROVAL, "parked"),
        ("bak234", S.SCHEDULED, "scheduled"),
        ("par234", S.PARTIAL, "partial"),
        ("req234", S.QUEUED, "requeued"),  # last: a queued job is claimable again
    ]:
        put_job(S.QUEUED, id=job_id, priority=9)
        assert claim_store.claim(db, "w1", clock.now(), 30)["id"] == job_id
        row = job_store.finish(db, job_id, 1, new, clock.now(), values={"run_at": LATER})
        assert row["state"] == new.value
        assert kinds(db, job_id)[-1] == kind
    assert job_store.ENDING_VERBS == {S.QUEUED: V.REQUEUE, S.AWAITING_APPROVAL: V.PARK}


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


def test_finish_many_ends_several_attempts_in_one_transaction_each_fenced(db, put_job, clock):
    put_job(S.QUEUED, id="mna234")
    put_job(S.QUEUED, id="mnb234")
    put_job(S.WAITING, id="mnc234", after=("mna234", "mnb234"))
    assert len(claim_store.claim_many(db, "w1", clock.now(), 30, 4)) == 2
    begins = []
    on_begin = begins.append  # one bound method: the same one is removed
    sa.event.listen(db.engine, "begin", on_begin)
    try:
        out = job_store.finish_many(
            db,
            [
                job_store.End("mna234", 1, S.SUCCEEDED, clock.now(), {"result": {"n": 1}}),
                job_store.End("mnb234", 2, S.SUCCEEDED, clock.now(), {}),  # a stale attempt
            ],
        )
    finally:
        sa.event.remove(db.engine, "begin", on_begin)
    assert len(begins) == 1
    assert out[0]["state"] == "succeeded" and out[0]["result"] == {"n": 1}
    assert out[1] is None
    assert state_of(db, "mnb234") == "running"
    assert state_of(db, "mnc234") == "waiting"  # one dependency still runs
    row = job_store.finish_many(
        db, [job_store.End("mnb234", 1, S.SUCCEEDED, clock.now(), {"error": None})]
    )[0]
    assert row["state"] == "succeeded"
    assert state_of(db, "mnc234") == "queued"
    assert kinds(db, "mnb234")[-1] == "succeeded"


def test_a_finish_writes_none_as_sql_null_not_json_null(db, put_job, clock):
    """The finish's UPDATE is built once per shape: a None still lands as SQL NULL."""
    put_job(S.QUEUED, id="nul234")
    claim_store.claim(db, "w1", clock.now(), 30)
    job_store.finish(db, "nul234", 1, S.SUCCEEDED, clock.now(), values={"result": None})
    with db.read() as conn:
        nulls = conn.execute(
            sa.select(sa.func.count()).where(jobs.c.id == "nul234", jobs.c.result.is_(None))
        ).scalar_one()
    assert nulls == 1


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


# -- every verb against every state ----------------------------------------------------------

ROUTED = (V.FINISH, V.REQUEUE, V.RELEASE, V.APPROVE, V.REJECT, V.PARK, V.BREAK_GLASS)
"""Verbs walked through ``transition`` against every target state (their callers name the
target: the worker, the reaper, the approvals to come)."""
REFUSED_AS = {
    V.RETRY: "retry",
    V.CANCEL: "cancel",
    V.WAIT: "add dependencies to",
    V.REPRIORITISE: "change the priority of",
}
"""The operator verbs refuse with ``InvalidTransition`` ("cannot retry job X: it is S");
the engine's verbs and ``claim`` return None."""


class Walk:
    """Real rows in one real store, each brought to its state by the verbs themselves."""

    def __init__(self, db: Database, now: datetime) -> None:
        self.db, self.now, self.count = db, now, 0

    def next_id(self) -> str:
        self.count += 1
        return f"w{self.count:05d}"

    def submit(self, state: JobState, after: tuple[str, ...] = (), job_id: str = "") -> str:
        job_id = job_id or self.next_id()
        row = {
            "id": job_id,
            "template": "echo",
            "state": state.value,
            "priority": self.count,  # the newest job is the one the next claim takes
            "run_at": self.now,
            "created_at": self.now,
            "updated_at": self.now,
        }
        job_store.submit(self.db, row, after, actor="tester", now=self.now)
        return job_id

    def blocker(self) -> str:
        """An unfinished job that nothing claims: something to wait for."""
        return self.submit(S.AWAITING_APPROVAL)

    def reach(self, state: JobState) -> str:
        if state in INITIAL:
            return self.submit(state, (self.blocker(),) if state == S.WAITING else ())
        if state == S.REJECTED:
            job_id = self.submit(S.AWAITING_APPROVAL)
            with self.db.write() as conn:
                assert job_store.transition(conn, job_id, state, self.now, verb=V.REJECT)
            return job_id
        job_id = self.submit(S.QUEUED)
        claimed = claim_store.claim(self.db, "w1", self.now, 30)
        assert claimed is not None and claimed["id"] == job_id
        if state != S.RUNNING:
            assert job_store.finish(self.db, job_id, 1, state, self.now, values={})
        return job_id

    def act(self, verb: Verb, job_id: str, new: JobState, dep: str) -> RowMapping | None:
        """The verb's own entry in the store, as its callers use it."""
        db, now = self.db, self.now
        if verb == V.CLAIM:
            return claim_store.claim(db, "w2", now, 30)
        if verb == V.RETRY:
            return job_store.retry(db, job_id, now, actor="op", secret_blob=None)
        if verb == V.CANCEL:
            return job_store.request_cancel(db, job_id, reason="", actor="op", now=now)
        if verb == V.WAIT:
            return job_store.add_dependencies(db, job_id, [dep], actor="op", now=now)
        if verb == V.REPRIORITISE:
            return job_store.set_priority(db, job_id, 99, actor="op", now=now)
        with db.write() as conn:
            return job_store.transition(conn, job_id, new, now, verb=verb)

    def snapshot(self, job_id: str) -> tuple[dict[str, Any] | None, list[str], list[Any]]:
        with self.db.read() as conn:
            row = job_store.fetch(conn, job_id)
            trail = conn.execute(
                sa.select(events).where(events.c.job_id == job_id).order_by(events.c.id)
            ).mappings()
            return (
                dict(row) if row else None,
                job_store.dependencies_of(conn, job_id),
                [dict(e) for e in trail],
            )


@contextlib.contextmanager
def events_refused(db: Database) -> Iterator[None]:
    """Make every event insert fail: a change committed apart from its event would show."""
    with db.write() as conn:
        if db.dialect == "postgresql":
            conn.exec_driver_sql(
                "CREATE FUNCTION test_refuse_events() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'events refused' USING ERRCODE = 'restrict_violation'; "
                "END; $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_events BEFORE INSERT ON job_events "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse_events()"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_events BEFORE INSERT ON job_events "
                "BEGIN SELECT RAISE(ABORT, 'events refused'); END"
            )
    try:
        yield
    finally:
        with db.write() as conn:
            if db.dialect == "postgresql":
                conn.exec_driver_sql("DROP TRIGGER refuse_events ON job_events")
                conn.exec_driver_sql("DROP FUNCTION test_refuse_events()")
            else:
                conn.exec_driver_sql("DROP TRIGGER refuse_events")


def expected_after(verb: Verb, old: JobState, new: JobState) -> JobState | None:
    """Where ``verb`` takes a job in ``old`` (asked for ``new``), per the verb table."""
    if verb in ROUTED:
        return new if old != new and allows(verb, old, new) else None
    moved = targets(verb, old) - {old}
    if verb == V.RETRY:  # the walk's jobs are not gated (tests/core/test_approvals.py are)
        moved -= {JobState.AWAITING_APPROVAL}
    if moved:
        [only] = moved
        return only
    return old if old in KEEPS[verb] else None


def event_of(verb: Verb, old: JobState, new: JobState) -> str:
    if verb == V.FINISH:
        return new.value
    if verb == V.CANCEL and new == old:
        return "cancel_requested"
    return EVENTS[verb]


@pytest.mark.parametrize(
    ("verb", "old"), list(itertools.product([v for v in Verb if v != V.SUBMIT], JobState))
)
def test_every_verb_against_every_state(db, clock, verb, old):
    """Allowed: the row moves (or keeps its state) and its event is in the same transaction.
    Anything else: the documented refusal, and neither the row nor its trail changes."""
    walk = Walk(db, clock.now())
    for new in JobState if verb in ROUTED else [old]:
        job_id = walk.reach(old)
        dep = walk.blocker() if verb == V.WAIT else ""
        before = walk.snapshot(job_id)
        expected = expected_after(verb, old, new)
        if expected is None:
            if verb in REFUSED_AS:
                refusal = f"^cannot {REFUSED_AS[verb]} job {job_id}: it is {old.value}$"
                with pytest.raises(InvalidTransition, match=refusal):
                    walk.act(verb, job_id, new, dep)
            else:
                assert walk.act(verb, job_id, new, dep) is None, (verb, old, new)
            assert walk.snapshot(job_id) == before, (verb, old, new)
            continue
        with events_refused(db), pytest.raises(sa.exc.IntegrityError, match="events refused"):
            walk.act(verb, job_id, new, dep)
        assert walk.snapshot(job_id) == before, f"{verb} {old} -> {expected} without its event"
        out = walk.act(verb, job_id, new, dep)
        assert out is not None and out["id"] == job_id and out["state"] == expected.value
        row, _, trail = walk.snapshot(job_id)
        assert row is not None and row["state"] == expected.value
        assert trail[:-1] == before[2], "exactly one event"
        last = trail[-1]
        assert (last["kind"], last["state"]) == (event_of(verb, old, expected), expected.value)


@pytest.mark.parametrize("state", list(JobState))
def test_submit_against_every_state(db, clock, state):
    walk = Walk(db, clock.now())
    after = (walk.blocker(),) if state == S.WAITING else ()
    empty = (None, [], [])
    if state not in INITIAL:
        with pytest.raises(
            InvalidTransition, match=f"cannot submit job new234: it would be {state}"
        ):
            walk.submit(state, after, job_id="new234")
        assert walk.snapshot("new234") == empty
        return
    with events_refused(db), pytest.raises(sa.exc.IntegrityError, match="events refused"):
        walk.submit(state, after, job_id="new234")
    assert walk.snapshot("new234") == empty
    walk.submit(state, after, job_id="new234")
    row, deps_, trail = walk.snapshot("new234")
    assert row is not None and row["state"] == state.value
    assert deps_ == list(after)
    assert [(e["kind"], e["state"]) for e in trail] == [("submitted", state.value)]
