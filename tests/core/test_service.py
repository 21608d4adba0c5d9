"""OpsService: submit (states, --at/--in, dependencies), operator actions, feeds, id
prefixes, listings, stats, locks and health, all against a real store and a settable clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from support import write_template

from opsconsole.core.clock import SettableClock
from opsconsole.core.errors import Conflict, InvalidParams, InvalidTransition, NotFound
from opsconsole.core.identity import os_user
from opsconsole.core.service import ListRequest, OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database

S = JobState


def submit(svc, template="echo", **kw):
    return svc.submit(SubmitRequest(template=template, **kw))


def run(svc, job_id, outcome=S.SUCCEEDED, *, seconds=0.0):
    """Claim ``job_id`` (it must be the next ready job) and end it after ``seconds``."""
    row = claim_store.claim(svc.db, "w1", svc.now(), 30)
    assert row is not None and row["id"] == job_id
    if seconds:
        svc.clock.advance(seconds)
    out = job_store.finish(svc.db, job_id, row["attempts"], outcome, svc.now(), values={})
    assert out is not None
    return out


# -- submit -------------------------------------------------------------------------------


def test_submit_queues_a_job_with_its_event(clocked, echo, clock):
    job = submit(clocked, params={"word": "hi"}, tags=("nightly",), priority="high")
    assert job.state == S.QUEUED
    assert job.template == "echo"
    assert job.params == {"word": "hi"}
    assert job.priority == 10
    assert job.tags == ["nightly"]
    assert job.submitted_by == os_user()
    assert job.created_at == clock.now()
    assert len(job.id) == 6
    [event] = clocked.get(job.id, with_events=True).events
    assert (event.kind, event.state, event.actor) == ("submitted", "queued", os_user())


def test_submit_returns_the_job_as_the_store_reads_it_back(clocked, catalog, clock):
    """The view a submit returns is built from the row the insert returned: it must equal
    what any later read gives (types, defaults, time zones, masked secrets)."""
    write_template(
        catalog,
        "typed",
        "runner: shell\ncommand: [echo, '{{ word }}']\ntimeout: 30s\nretries: 2\n"
        "concurrency: {key: 'k-{{ word }}', limit: 2}\ntags: [base]\n"
        "params:\n  word: {type: string}\n  count: {type: integer, default: 3}\n"
        "  ratio: {type: number, default: 1}\n  token: {type: string, secret: true}\n",
    )
    first = submit(clocked, "typed", params={"word": "a", "token": "s3cret"})
    jobs = [
        first,
        submit(clocked, "typed", params={"word": "b", "count": "7"}, tags=("x", "y"), run_in="1h"),
        submit(clocked, "typed", params={"word": "c"}, priority="low", timeout="5s", dry_run=True),
        submit(clocked, "typed", params={"word": "d"}, after=(first.id,)),
    ]
    for job in jobs:
        assert job == clocked.get(job.id)
    assert [j.state for j in jobs] == [S.QUEUED, S.SCHEDULED, S.QUEUED, S.WAITING]
    assert jobs[0].params["token"] == "***"


def test_submit_many_stores_every_job_in_one_transaction_or_none(clocked, echo):
    jobs = clocked.submit_many([SubmitRequest("echo", params={"word": str(i)}) for i in range(5)])
    assert [clocked.get(j.id) for j in jobs] == jobs
    assert len({j.id for j in jobs}) == 5
    for job in jobs:
        [event] = clocked.get(job.id, with_events=True).events
        assert (event.kind, event.state) == ("submitted", "queued")
    before = clocked.counts()
    with pytest.raises(InvalidParams, match="unknown parameter 'wrod'"):
        clocked.submit_many(
            [
                SubmitRequest("echo", params={"word": "ok"}),
                SubmitRequest("echo", params={"wrod": 1}),
            ]
        )
    assert clocked.counts() == before
    assert clocked.submit_many([]) == []


def test_submit_many_draws_a_taken_id_again(clocked, echo):
    taken = submit(clocked).id
    ids = iter([taken, "new234", taken, taken, "nxt234"])
    rows = [clocked.job_row(SubmitRequest("echo"))[0] for _ in range(2)]
    out = job_store.submit_many(
        clocked.db, [(r, []) for r in rows], lambda: next(ids), actor="tester"
    )
    assert [r["id"] for r in out] == ["new234", "nxt234"]
    assert clocked.get(taken).template == "echo"  # the taken id's job is untouched


def test_submit_refuses_unknown_templates_and_bad_params(clocked, echo):
    with pytest.raises(NotFound, match="unknown template 'ehco'"):
        submit(clocked, "ehco")
    with pytest.raises(InvalidParams, match="unknown parameter 'wrod'"):
        submit(clocked, params={"wrod": "x"})
    with pytest.raises(InvalidParams, match="retries must be between 0 and 100"):
        submit(clocked, retries=101)
    with pytest.raises(InvalidParams, match="invalid tag"):
        submit(clocked, tags=("a,b",))
    assert clocked.list_jobs(ListRequest()).total == 0


def test_run_in_schedules_the_job_for_later(clocked, echo, clock):
    job = submit(clocked, run_in="10m")
    assert job.state == S.SCHEDULED
    assert job.run_at == clock.now() + timedelta(minutes=10)
    assert claim_store.claim(clocked.db, "w1", clock.now(), 30) is None
    clock.advance(9 * 60 + 59)
    assert claim_store.claim(clocked.db, "w1", clock.now(), 30) is None
    clock.advance(1)
    assert claim_store.claim(clocked.db, "w1", clock.now(), 30)["id"] == job.id


def test_run_at_in_the_future_and_in_the_past(clocked, echo, clock):
    later = submit(clocked, run_at=clock.now() + timedelta(hours=2))
    assert later.state == S.SCHEDULED
    assert later.run_at == clock.now() + timedelta(hours=2)
    past = submit(clocked, run_at=clock.now() - timedelta(hours=2))
    assert past.state == S.QUEUED
    assert past.run_at == clock.now()


def test_run_at_and_run_in_exclude_each_other(clocked, echo, clock):
    with pytest.raises(InvalidParams, match="either --at or --in"):
        submit(clocked, run_at=clock.now(), run_in="5m")
    with pytest.raises(InvalidParams, match="time zone"):
        submit(clocked, run_at=datetime(2030, 1, 1, 12, 0))
    with pytest.raises(InvalidParams):
        submit(clocked, run_in="soon")


# -- dependencies -------------------------------------------------------------------------


def test_a_dependent_waits_and_is_released_when_its_dependency_succeeds(clocked, echo):
    a = submit(clocked)
    b = submit(clocked, after=(a.id[:4],))
    assert b.state == S.WAITING
    assert b.depends_on == [a.id]
    run(clocked, a.id, S.SUCCEEDED)
    b = clocked.get(b.id, with_events=True)
    assert b.state == S.QUEUED
    assert [e.kind for e in b.events] == ["submitted", "released"]


def test_the_same_dependency_twice_is_one_dependency(clocked, echo):
    a = submit(clocked)
    b = submit(clocked, after=(a.id, a.id[:4]))
    assert b.depends_on == [a.id]
    assert clocked.get(b.id).depends_on == [a.id]
    assert clocked.get(b.id).to_dict()["depends_on"] == [a.id]


def test_a_dependent_on_a_succeeded_job_is_queued_at_once(clocked, echo):
    a = submit(clocked)
    run(clocked, a.id, S.SUCCEEDED)
    assert submit(clocked, after=(a.id,)).state == S.QUEUED


def test_a_failed_dependency_cancels_the_chain(clocked, echo):
    a = submit(clocked)
    b = submit(clocked, after=(a.id,))
    c = submit(clocked, after=(b.id,))
    run(clocked, a.id, S.FAILED)
    for job in (b, c):
        view = clocked.get(job.id, with_events=True)
        assert view.state == S.CANCELLED
        assert a.id in view.error["message"]
        assert view.events[-1].kind == "cancelled"
        assert a.id in view.events[-1].message
    assert clocked.get(c.id).error["detail"]["root"] == {"job": a.id, "state": "failed"}


def test_dependency_on_an_unknown_or_failed_job_is_refused(clocked, echo):
    with pytest.raises(NotFound, match="dependency: no job matches 'zzzzzz'"):
        submit(clocked, after=("zzzzzz",))
    a = submit(clocked)
    run(clocked, a.id, S.FAILED)
    with pytest.raises(InvalidParams, match=f"'{a.id}' already ended failed"):
        submit(clocked, after=(a.id,))
    assert clocked.list_jobs(ListRequest()).total == 1


def test_add_dependencies_refuses_a_cycle(clocked, echo):
    a = submit(clocked)
    b = submit(clocked)
    assert clocked.add_dependencies(a.id, [b.id]).state == S.WAITING
    with pytest.raises(InvalidParams, match="cycle"):
        clocked.add_dependencies(b.id, [a.id])
    assert clocked.get(b.id).state == S.QUEUED
    assert clocked.get(b.id).depends_on == []


# -- operator actions ---------------------------------------------------------------------


def test_cancel_a_queued_job(clocked, echo):
    job = submit(clocked)
    out = clocked.cancel(job.id, reason="not today")
    assert out.state == S.CANCELLED
    assert out.error["message"] == "not today"
    last = clocked.get(job.id, with_events=True).events[-1]
    assert (last.kind, last.actor, last.message) == ("cancelled", os_user(), "not today")


def test_cancel_a_running_job_asks_the_worker(clocked, echo, clock):
    claim_store.register_worker(
        clocked.db, "w1", host="h", pid=1, slots=1, now=clock.now(), version="t"
    )
    job = submit(clocked)
    claim_store.claim(clocked.db, "w1", clock.now(), 30)
    out = clocked.cancel(job.id)
    assert out.state == S.RUNNING
    assert out.cancel_requested is True
    assert out.can_cancel is False
    assert clocked.get(job.id, with_events=True).events[-1].kind == "cancel_requested"
    reply = claim_store.heartbeat(
        clocked.db,
        "w1",
        clock.now(),
        lease_s=30,
        slots=1,
        busy=1,
        state="running",
        running=[(job.id, 1)],
    )
    assert reply.cancel == [(job.id, 1, f"cancelled by {os_user()}")]


def test_cancel_or_retry_of_a_succeeded_job_is_an_invalid_transition(clocked, echo):
    job = submit(clocked)
    run(clocked, job.id, S.SUCCEEDED)
    with pytest.raises(InvalidTransition, match="it is succeeded"):
        clocked.cancel(job.id)
    with pytest.raises(InvalidTransition, match=f"cannot retry job {job.id}: it is succeeded"):
        clocked.retry(job.id)
    assert clocked.get(job.id).state == S.SUCCEEDED


def test_retry_of_a_queued_job_is_an_invalid_transition(clocked, echo):
    job = submit(clocked)
    with pytest.raises(InvalidTransition, match="it is queued"):
        clocked.retry(job.id)


def test_retry_a_failed_job(clocked, echo, clock):
    job = submit(clocked, params={"word": "again"})
    run(clocked, job.id, S.FAILED)
    clock.advance(60)
    out = clocked.retry(job.id)
    assert out.state == S.QUEUED
    assert out.run_at == clock.now()
    assert out.finished_at is None
    assert out.error is None
    assert out.params == {"word": "again"}
    with clocked.db.read() as conn:
        assert job_store.fetch(conn, job.id)["retry_base"] == 1
    last = clocked.get(job.id, with_events=True).events[-1]
    assert (last.kind, last.actor) == ("retried", os_user())
    assert claim_store.claim(clocked.db, "w1", clock.now(), 30)["attempts"] == 2


def test_retry_a_partial_job(clocked, echo, clock):
    """Some of its work failed: an operator can run it again."""
    job = submit(clocked)
    run(clocked, job.id, S.PARTIAL)
    assert clocked.get(job.id).can_retry
    out = clocked.retry(job.id)
    assert (out.state, out.error, out.finished_at) == (S.QUEUED, None, None)
    assert clocked.get(job.id, with_events=True).events[-1].kind == "retried"
    assert claim_store.claim(clocked.db, "w1", clock.now(), 30)["attempts"] == 2


def test_a_stale_retry_of_a_running_job_is_refused_and_changes_nothing(clocked, echo, clock):
    """An operator read the job as failed; since then it was retried and a worker claimed it."""
    job = submit(clocked)
    run(clocked, job.id, S.FAILED)
    assert clocked.get(job.id).can_retry  # what the operator saw
    clocked.retry(job.id)
    claim_store.claim(clocked.db, "w2", clock.now(), 30)
    with pytest.raises(InvalidTransition, match=f"^cannot retry job {job.id}: it is running$"):
        clocked.retry(job.id)
    assert_still_running_on_w2(clocked, job.id)


class RacingClock(SettableClock):
    """A settable clock that lets another writer in the first time it is read after ``arm``:
    ``retry`` reads the time after it has looked at the job, just before it writes."""

    def __init__(self) -> None:
        super().__init__()
        self._meanwhile: Callable[[], None] | None = None
        self.raced = False

    def arm(self, meanwhile: Callable[[], None]) -> None:
        self._meanwhile = meanwhile

    def now(self) -> datetime:
        meanwhile, self._meanwhile = self._meanwhile, None
        if meanwhile is not None:
            meanwhile()
            self.raced = True
        return super().now()


def test_a_retry_racing_a_retry_and_a_claim_is_refused_by_its_write(settings, echo):
    """The read says failed, the row changes before the write: the write must not requeue it."""
    clock = RacingClock()
    bob = OpsService(settings, Database(settings.db), clock=clock)
    carol = OpsService(settings, Database(settings.db), clock=SettableClock(clock.now()))
    try:
        job = submit(bob)
        run(bob, job.id, S.FAILED)

        def carol_retries_and_a_worker_claims() -> None:
            carol.retry(job.id)
            claimed = claim_store.claim(carol.db, "w2", carol.now(), 30)
            assert claimed is not None and claimed["id"] == job.id

        clock.arm(carol_retries_and_a_worker_claims)
        with pytest.raises(InvalidTransition, match=f"^cannot retry job {job.id}: it is running$"):
            bob.retry(job.id)
        assert clock.raced
        assert_still_running_on_w2(bob, job.id)
    finally:
        bob.db.dispose()
        carol.db.dispose()


def assert_still_running_on_w2(svc, job_id):
    """Same attempt, same worker, and that worker can still record the end of its run."""
    view = svc.get(job_id, with_events=True)
    assert (view.state, view.attempts, view.worker) == (S.RUNNING, 2, "w2")
    assert [e.kind for e in view.events].count("retried") == 1
    assert view.events[-1].kind == "started"
    out = job_store.finish(svc.db, job_id, 2, S.SUCCEEDED, svc.now(), values={})
    assert out is not None and out["state"] == S.SUCCEEDED.value


def test_retry_refuses_new_public_params(clocked, echo):
    job = submit(clocked)
    run(clocked, job.id, S.FAILED)
    with pytest.raises(InvalidParams, match="'word' is not secret"):
        clocked.retry(job.id, params={"word": "x"})


def test_set_priority(clocked, echo):
    job = submit(clocked)
    assert clocked.set_priority(job.id, "critical").priority == 15
    with pytest.raises(InvalidParams):
        clocked.set_priority(job.id, "urgent")


# -- feeds ------------------------------------------------------------------------------


def test_events_since_returns_the_feed_in_id_order(clocked, echo):
    cursor = clocked.last_event_id()
    a = submit(clocked)
    b = submit(clocked)
    clocked.cancel(a.id)
    got = clocked.events_since(cursor)
    assert [(e.job_id, e.kind) for e in got] == [
        (a.id, "submitted"),
        (b.id, "submitted"),
        (a.id, "cancelled"),
    ]
    assert [e.id for e in got] == sorted(e.id for e in got)
    assert clocked.events_since(got[-1].id) == []
    assert [e.kind for e in clocked.events_since(cursor, job=a.id)] == ["submitted", "cancelled"]


def test_get_with_events_is_the_audit_trail(clocked, echo):
    job = submit(clocked)
    run(clocked, job.id, S.SUCCEEDED, seconds=3)
    view = clocked.get(job.id, with_events=True)
    assert [(e.kind, e.state) for e in view.events] == [
        ("submitted", "queued"),
        ("started", "running"),
        ("succeeded", "succeeded"),
    ]
    assert view.duration_s == 3.0
    assert [e["kind"] for e in view.to_dict()["events"]] == ["submitted", "started", "succeeded"]
    assert clocked.get(job.id).events is None
    assert "events" not in clocked.get(job.id).to_dict()


# -- id prefixes ------------------------------------------------------------------------


def test_id_prefixes(clocked, put_job):
    put_job(id="bcd234")
    put_job(id="bcd567")
    put_job(id="xyz234")
    assert clocked.resolve("xy") == "xyz234"
    assert clocked.resolve("BCD2") == "bcd234"
    assert clocked.resolve("bcd567") == "bcd567"
    assert clocked.get("bcd5").id == "bcd567"
    with pytest.raises(Conflict, match="'bcd' matches several jobs"):
        clocked.resolve("bcd")
    with pytest.raises(NotFound, match="no job matches 'qqq'"):
        clocked.resolve("qqq")
    with pytest.raises(NotFound):
        clocked.resolve("b%")
    with pytest.raises(NotFound):
        clocked.resolve("")


# -- listings and stats ------------------------------------------------------------------


@pytest.fixture
def deploy(catalog):
    write_template(catalog, "deploy", "runner: shell\ncommand: [echo, ok]\ntags: [prod]\n")
    return "deploy"


def test_jobs_started_by_one_claim_are_listed_running_in_the_order_they_were_claimed(
    clocked, echo, clock
):
    """One batch claim gives its jobs the same ``started_at``: the Running pane (and the
    cursor that lands on its oldest job) must still show them in claim order, priority then
    age, not in the order of their random ids."""
    normal = []
    for _ in range(6):
        normal.append(submit(clocked).id)
        clock.advance(1)
    urgent = submit(clocked, priority="high").id
    claimed = claim_store.claim_many(clocked.db, "w1", clock.now(), 30, 10)
    assert [r["id"] for r in claimed] == [urgent, *normal]
    assert [j.id for j in clocked.running()] == [urgent, *normal]


def test_list_jobs_filters_and_pages(clocked, echo, deploy, clock):
    old = submit(clocked, tags=("nightly",))
    clock.advance(3 * 3600)
    d1 = submit(clocked, deploy)
    clock.advance(1)
    e1 = submit(clocked, tags=("nightly-extra",))
    clock.advance(1)
    e2 = submit(clocked, tags=("nightly",))
    clocked.cancel(e1.id)

    page = clocked.list_jobs(ListRequest())
    assert [j.id for j in page.jobs] == [e2.id, e1.id, d1.id, old.id]  # newest first
    assert page.total == 4

    def ids(**kw):
        return [j.id for j in clocked.list_jobs(ListRequest(**kw)).jobs]

    assert ids(states=("cancelled",)) == [e1.id]
    assert ids(states=("queued",), template="echo") == [e2.id, old.id]
    assert ids(template="deploy") == [d1.id]
    assert ids(tag="nightly") == [e2.id, old.id]
    assert ids(tag="prod") == [d1.id]
    assert ids(since="1h") == [e2.id, e1.id, d1.id]
    assert ids(since="1h", tag="nightly") == [e2.id]
    assert ids(text="depl") == [d1.id]
    assert ids(text=old.id[:5]) == [old.id]

    first = clocked.list_jobs(ListRequest(page=1, page_size=3))
    second = clocked.list_jobs(ListRequest(page=2, page_size=3))
    assert (first.total, first.pages, len(first.jobs)) == (4, 2, 3)
    assert [j.id for j in second.jobs] == [old.id]
    assert second.to_dict()["pages"] == 2
    assert clocked.list_jobs(ListRequest(page=3, page_size=3)).jobs == []

    with pytest.raises(InvalidParams, match="unknown state 'bogus'"):
        clocked.list_jobs(ListRequest(states=("bogus",)))
    with pytest.raises(InvalidParams):
        clocked.list_jobs(ListRequest(page=0))


def test_stats_counts_and_percentiles(clocked, echo, deploy, clock):
    durations = [1, 2, 3, 4, 10]
    for i, seconds in enumerate(durations):
        job = submit(clocked)
        run(clocked, job.id, S.FAILED if i == 4 else S.SUCCEEDED, seconds=seconds)
    submit(clocked)
    submit(clocked, deploy)
    stats = clocked.stats()
    assert stats.counts["succeeded"] == 4
    assert stats.counts["failed"] == 1
    assert stats.counts["queued"] == 2
    assert stats.counts["running"] == 0
    assert set(stats.counts) == {s.value for s in JobState}
    [echo_stats] = stats.templates
    assert (echo_stats.template, echo_stats.runs) == ("echo", 5)
    assert (echo_stats.succeeded, echo_stats.failed) == (4, 1)
    assert echo_stats.success_rate == 0.8
    assert echo_stats.p50_s == pytest.approx(3.0, abs=0.002)
    assert echo_stats.p95_s == pytest.approx(10.0, abs=0.002)
    assert echo_stats.recent == ["succeeded"] * 4 + ["failed"]
    assert stats.success_rate == 0.8

    clock.advance(3600)
    job = submit(clocked, priority="high")
    run(clocked, job.id, S.SUCCEEDED, seconds=7)
    recent = clocked.stats(since="30m")
    [echo_recent] = recent.templates
    assert (echo_recent.runs, echo_recent.p50_s) == (1, pytest.approx(7.0, abs=0.002))
    assert recent.counts["succeeded"] == 1
    assert recent.counts["queued"] == 2  # live jobs count whatever their age


def test_locks_show_holders_and_waiters_in_claim_order(clocked, catalog, clock):
    write_template(
        catalog,
        "svc",
        "runner: shell\ncommand: [echo, ok]\nparams:\n  unit: {type: string}\n"
        "concurrency: {key: 'svc-{{ unit }}', limit: 1}\n",
    )
    holder = submit(clocked, "svc", params={"unit": "web"})
    clock.advance(1)
    w1 = submit(clocked, "svc", params={"unit": "web"})
    clock.advance(1)
    w2 = submit(clocked, "svc", params={"unit": "web"}, priority="high")
    clock.advance(1)
    other = submit(clocked, "svc", params={"unit": "db"})
    claim_store.claim(clocked.db, "w1", clock.now(), 30)  # holder (oldest, normal)
    locks = {lock.key: lock for lock in clocked.locks()}
    assert set(locks) == {"svc-web", "svc-db"}
    web = locks["svc-web"]
    assert [h.job for h in web.holders] == [w2.id]  # high priority went first
    assert web.holders[0].worker == "w1"
    assert web.waiting == [holder.id, w1.id]
    assert web.since == clock.now()
    assert locks["svc-db"].holders == []
    assert locks["svc-db"].waiting == [other.id]
    assert web.to_dict()["limit"] == 1


def test_health(clocked, echo, clock):
    health = clocked.health()
    checks = {c.name: c for c in health.checks}
    assert checks["store"].ok
    assert checks["workers"].ok  # nothing queued, nobody needed

    submit(clocked)
    checks = {c.name: c for c in clocked.health().checks}
    assert not checks["workers"].ok
    assert "no live worker and 1 job(s) queued" in checks["workers"].detail

    claim_store.register_worker(
        clocked.db, "h:1:aa", host="h", pid=1, slots=2, now=clock.now(), version="t"
    )
    checks = {c.name: c for c in clocked.health().checks}
    assert checks["workers"].ok
    assert checks["workers"].detail == "1 alive, 0/2 slots busy"

    clock.advance(clocked.settings.lease + 1)
    health = clocked.health()
    checks = {c.name: c for c in health.checks}
    assert not health.healthy
    assert not checks["workers"].ok
    assert "h:1:aa" in checks["workers"].detail
    assert health.to_dict()["healthy"] is False


def test_health_of_an_unreachable_store(settings, tmp_path):
    from opsconsole.core.service import OpsService
    from opsconsole.core.store.db import Database

    bad = tmp_path / "garbage.db"
    bad.write_bytes(b"not a database" * 512)
    db = Database(f"sqlite:///{bad}")
    try:
        health = OpsService(settings, db).health()
    finally:
        db.dispose()
    assert not health.healthy
    assert [(c.name, c.ok) for c in health.checks] == [
        ("store", False),
        ("files", True),
        ("disk", True),
        ("catalog", True),
    ]


def test_timestamps_are_aware_utc(clocked, echo):
    job = submit(clocked)
    assert job.created_at.tzinfo is not None
    assert job.created_at.utcoffset() == timedelta(0)
    assert job.to_dict()["created_at"] == "2026-01-01T12:00:00.000Z"
    assert clocked.get(job.id).created_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
