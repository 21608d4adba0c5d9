"""Claims (order, readiness, concurrency keys), leases, heartbeats and the reaper's queries."""

from __future__ import annotations

from datetime import timedelta

from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import feed
from opsconsole.core.store import jobs as job_store

S = JobState


def claim_ids(db, clock, n=20):
    out = []
    for _ in range(n):
        row = claim_store.claim(db, "w1", clock.now(), 30)
        if row is None:
            break
        out.append(row["id"])
    return out


def test_claim_marks_the_job_running_with_a_new_attempt_and_lease(db, put_job, clock):
    put_job(S.QUEUED, id="aaa234")
    row = claim_store.claim(db, "host:1:ab", clock.now(), 30)
    assert row["id"] == "aaa234"
    assert row["state"] == "running"
    assert row["attempts"] == 1
    assert row["worker"] == "host:1:ab"
    assert row["started_at"] == clock.now()
    assert row["lease_until"] == clock.now() + timedelta(seconds=30)
    [started] = [e for e in feed.job_events(db, "aaa234") if e["kind"] == "started"]
    assert (started["actor"], started["attempt"]) == ("host:1:ab", 1)
    [meta] = feed.logs_since(db, "aaa234", 0, 10)
    assert (meta["seq"], meta["stream"], meta["line"]) == (
        1,
        "meta",
        "attempt 1 started on host:1:ab",
    )
    assert claim_store.claim(db, "w2", clock.now(), 30) is None


def test_claim_order_is_priority_then_age(db, put_job, clock):
    put_job(S.QUEUED, id="low111", priority=1)
    clock.advance(1)
    put_job(S.QUEUED, id="old555", priority=5)
    clock.advance(1)
    put_job(S.QUEUED, id="new555", priority=5)
    clock.advance(1)
    put_job(S.QUEUED, id="hig100", priority=10)
    clock.advance(1)
    put_job(S.QUEUED, id="mid555", priority=5)
    assert claim_ids(db, clock) == ["hig100", "old555", "new555", "mid555", "low111"]


def test_fifo_by_age_not_by_id(db, put_job, clock):
    put_job(S.QUEUED, id="zzz999")
    clock.advance(0.001)
    put_job(S.QUEUED, id="bbb222")
    assert claim_ids(db, clock) == ["zzz999", "bbb222"]


def test_a_scheduled_job_is_claimable_only_once_due(db, put_job, clock):
    put_job(S.SCHEDULED, id="aaa234", run_at=clock.now() + timedelta(minutes=10))
    assert claim_store.next_run_at(db) == clock.now() + timedelta(minutes=10)
    assert claim_store.claim(db, "w1", clock.now(), 30) is None
    clock.advance(599)
    assert claim_store.claim(db, "w1", clock.now(), 30) is None
    clock.advance(1)
    assert claim_store.claim(db, "w1", clock.now(), 30)["id"] == "aaa234"


def test_pending_states_other_than_queued_and_scheduled_are_never_claimed(db, put_job, clock):
    put_job(S.WAITING, id="aaa234")
    put_job(S.AWAITING_APPROVAL, id="bbb234")
    put_job(S.CANCELLED, id="ccc234")
    assert claim_store.claim(db, "w1", clock.now(), 30) is None


def test_concurrency_key_limit_one(db, put_job, clock):
    put_job(S.QUEUED, id="aaa234", concurrency_key="svc-web", concurrency_limit=1)
    clock.advance(1)
    put_job(S.QUEUED, id="bbb234", concurrency_key="svc-web", concurrency_limit=1)
    clock.advance(1)
    put_job(S.QUEUED, id="ccc234", concurrency_key="svc-db", concurrency_limit=1)
    first = claim_store.claim(db, "w1", clock.now(), 30)
    assert first["id"] == "aaa234"
    # bbb234 is older than ccc234 but its key is held: the claim passes over it
    assert claim_store.claim(db, "w1", clock.now(), 30)["id"] == "ccc234"
    assert claim_store.claim(db, "w1", clock.now(), 30) is None
    job_store.finish(db, "aaa234", 1, S.SUCCEEDED, clock.now(), values={})
    assert claim_store.claim(db, "w1", clock.now(), 30)["id"] == "bbb234"


def test_concurrency_key_limit_two(db, put_job, clock):
    for i in range(3):
        put_job(S.QUEUED, id=f"key{i}22", concurrency_key="pool", concurrency_limit=2)
        clock.advance(1)
    assert claim_ids(db, clock) == ["key022", "key122"]
    job_store.finish(db, "key122", 1, S.FAILED, clock.now(), values={})
    assert claim_ids(db, clock) == ["key222"]


def test_heartbeat_renews_leases_and_reports_cancels_and_lost_runs(db, put_job, clock):
    claim_store.register_worker(db, "w1", host="h", pid=1, slots=2, now=clock.now(), version="t")
    put_job(S.QUEUED, id="aaa234")
    put_job(S.QUEUED, id="bbb234")
    claim_ids(db, clock)
    job_store.request_cancel(db, "bbb234", reason="stop it", actor="op", now=clock.now())
    clock.advance(10)
    reply = claim_store.heartbeat(
        db,
        "w1",
        clock.now(),
        lease_s=30,
        slots=2,
        busy=2,
        state="running",
        running=[("aaa234", 1), ("bbb234", 1), ("gone22", 3)],
    )
    assert reply.cancel == [("bbb234", 1, "stop it")]
    assert reply.lost == [("gone22", 3)]
    assert reply.desired_slots == 2
    assert claim_store.cancel_requests(db, "w1") == [("bbb234", 1, "stop it")]
    with db.read() as conn:
        row = job_store.fetch(conn, "aaa234")
    assert row["lease_until"] == clock.now() + timedelta(seconds=30)


def test_orphaned_jobs_are_the_expired_leases_and_dead_workers(db, put_job, clock):
    put_job(S.QUEUED, id="aaa234")
    claim_store.claim(db, "w1", clock.now(), 5)
    put_job(S.QUEUED, id="bbb234")
    claim_store.claim(db, "w2", clock.now(), 60)
    assert claim_store.orphaned_jobs(db, clock.now(), []) == []
    clock.advance(6)
    assert [r["id"] for r in claim_store.orphaned_jobs(db, clock.now(), [])] == ["aaa234"]
    found = {r["id"] for r in claim_store.orphaned_jobs(db, clock.now(), ["w2"])}
    assert found == {"aaa234", "bbb234"}


def test_stale_workers_and_resize(db, clock):
    claim_store.register_worker(db, "w1", host="h", pid=1, slots=2, now=clock.now(), version="t")
    clock.advance(10)
    claim_store.register_worker(db, "w2", host="h", pid=2, slots=2, now=clock.now(), version="t")
    stale = claim_store.stale_workers(db, clock.now() - timedelta(seconds=5))
    assert [w["id"] for w in stale] == ["w1"]
    assert claim_store.resize_worker(db, "w2", 4)["desired_slots"] == 4
    claim_store.mark_workers_dead(db, {"w1": "vanished"}, clock.now())
    assert claim_store.resize_worker(db, "w1", 4) is None
    assert [w["id"] for w in claim_store.list_workers(db)] == ["w2"]
    assert {w["id"] for w in claim_store.list_workers(db, include_stopped=True)} == {"w1", "w2"}
