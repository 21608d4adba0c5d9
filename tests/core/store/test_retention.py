"""Retention deletes: what goes, what always stays (audit events, live jobs and what they
need), batches, dry-run counts, and the once-across-processes turn of the periodic prune."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from opsconsole.core.clock import SettableClock
from opsconsole.core.errors import InvalidParams
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.store import feed, retention
from opsconsole.core.store.db import (
    Database,
    approvals,
    check_results,
    deps,
    events,
    host_tasks,
    instances,
    jobs,
    logs,
    schedule_fires,
    workers,
)
from opsconsole.core.store.jobs import NO_JOB

S = JobState


def ids(db: Database) -> set[str]:
    with db.read() as conn:
        return set(conn.execute(sa.select(jobs.c.id)).scalars())


def rows(db: Database, table: sa.Table, *where: Any) -> int:
    with db.read() as conn:
        query = sa.select(sa.func.count()).select_from(table).where(*where)
        return conn.execute(query).scalar_one()


def add_logs(db: Database, job_id: str, n: int) -> None:
    from datetime import UTC, datetime

    at = datetime(2025, 1, 1, tzinfo=UTC)
    with db.write() as conn:
        conn.execute(
            logs.insert(),
            [{"job_id": job_id, "seq": i, "ts": at, "line": f"line {i}"} for i in range(1, n + 1)],
        )


@pytest.fixture
def finished(db: Database, put_job: Any, clock: SettableClock) -> Any:
    """Put a job that finished ``days_ago`` (by the settable clock), with ``lines`` log lines."""

    def make(days_ago: float, *, lines: int = 3, state: S = S.SUCCEEDED, **kw: Any) -> str:
        at = clock.now() - timedelta(days=days_ago)
        row = put_job(state, created_at=at, started_at=at, finished_at=at, **kw)
        if lines:
            add_logs(db, row["id"], lines)
        return row["id"]

    return make


def test_a_prune_removes_old_finished_jobs_and_keeps_their_audit_events(
    clocked: OpsService, db: Database, finished: Any
) -> None:
    old, recent = finished(31), finished(2)
    with db.write() as conn:
        conn.execute(deps.insert().values(job_id=old, depends_on=recent))
        conn.execute(
            host_tasks.insert().values(
                job_id=old, attempt=1, seq=0, host="web1", status="ok", play="p", task="t"
            )
        )
        conn.execute(
            approvals.insert().values(
                job_id=old, round=1, actor="ann", decision="approve", at=clocked.now()
            )
        )
    events_before = [e["kind"] for e in feed.job_events(db, old)]

    view = clocked.prune()

    assert ids(db) == {recent}
    assert view.counts["jobs"] == 1
    assert view.counts["log_lines"] == 3
    assert rows(db, logs, logs.c.job_id == old) == 0
    assert rows(db, deps, deps.c.job_id == old) == 0
    assert rows(db, host_tasks, host_tasks.c.job_id == old) == 0
    assert rows(db, approvals, approvals.c.job_id == old) == 0
    # the audit trail of the pruned job is whole, and the prune itself is in it
    assert [e["kind"] for e in feed.job_events(db, old)] == events_before
    [pruned] = [e for e in feed.job_events(db, NO_JOB) if e["kind"] == "pruned"]
    assert pruned["data"]["jobs"] == 1
    assert pruned["message"].startswith("pruned 1 jobs")


def test_live_jobs_and_what_they_need_are_never_pruned(
    clocked: OpsService, db: Database, finished: Any, put_job: Any, clock: SettableClock
) -> None:
    long_ago = clock.now() - timedelta(days=90)
    queued = put_job(S.QUEUED, created_at=long_ago)["id"]
    running = put_job(S.RUNNING, created_at=long_ago, started_at=clock.now() - timedelta(hours=1))[
        "id"
    ]
    needed = finished(60)
    waiting = put_job(S.WAITING, created_at=long_ago, after=(needed,))["id"]
    last_apply = finished(60)
    with db.write() as conn:
        conn.execute(
            instances.insert().values(
                template="net",
                name="prod",
                status="applied",
                last_job=last_apply,
                created_at=long_ago,
                updated_at=long_ago,
            )
        )
    gone = finished(60)

    clocked.prune()

    assert ids(db) == {queued, running, needed, waiting, last_apply}
    assert gone not in ids(db)
    # the dependency edge of the live job is intact
    assert rows(db, deps, deps.c.job_id == waiting, deps.c.depends_on == needed) == 1


def test_a_retention_shorter_than_a_running_job_is_refused_and_removes_nothing(
    clocked: OpsService, db: Database, finished: Any, put_job: Any, clock: SettableClock
) -> None:
    old = finished(3)
    running = put_job(S.RUNNING, started_at=clock.now() - timedelta(hours=5))["id"]

    with pytest.raises(InvalidParams, match=rf"--older-than \(2h\) is shorter .* job {running}"):
        clocked.prune(older_than="2h")

    assert old in ids(db)
    assert rows(db, events, events.c.kind == "pruned") == 0
    # a longer one is fine, and still leaves the running job alone
    clocked.prune(older_than="1d")
    assert ids(db) == {running}


def test_a_periodic_prune_refused_by_a_long_running_job_fails_health(
    clocked: OpsService, db: Database, finished: Any, put_job: Any, clock: SettableClock
) -> None:
    """The pool's prune refuses while a job has run longer than ``retention_jobs`` (the
    default 30d): ``health`` says so instead of reporting the last prune that did work."""
    from opsconsole.engine import maintenance

    old = finished(40)
    running = put_job(S.RUNNING, started_at=clock.now() - timedelta(days=31))["id"]
    with pytest.raises(InvalidParams, match=f"job {running}"):
        maintenance.maintain(clocked, clock.now())
    line = next(c for c in clocked.health().checks if c.name == "retention")
    assert not line.ok and "prune refused" in line.detail and running in line.detail
    assert old in ids(db)  # nothing was removed


def test_log_lines_go_at_retention_logs_while_the_job_stays(
    clocked: OpsService, db: Database, finished: Any
) -> None:
    keep_lines, drop_lines = finished(13), finished(15)

    view = clocked.prune()  # defaults: jobs 30d, logs 14d

    assert ids(db) == {keep_lines, drop_lines}
    assert rows(db, logs, logs.c.job_id == keep_lines) == 3
    assert rows(db, logs, logs.c.job_id == drop_lines) == 0
    assert view.counts == {**view.counts, "jobs": 0, "log_lines": 3}


def test_webhook_deliveries_are_kept_a_week_at_most(
    clocked: OpsService, db: Database, finished: Any
) -> None:
    delivery = finished(8, template=retention.DELIVERY_TEMPLATE, lines=0)
    fresh_delivery = finished(6, template=retention.DELIVERY_TEMPLATE, lines=0)
    other = finished(8, lines=0)

    view = clocked.prune()

    assert ids(db) == {fresh_delivery, other}
    assert delivery not in ids(db)
    assert view.counts["deliveries"] == 1


def test_jobs_go_in_batches_and_log_lines_in_chunks(
    clocked: OpsService,
    db: Database,
    finished: Any,
    clock: SettableClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retention, "JOB_BATCH", 4)
    monkeypatch.setattr(retention, "LOG_CHUNK", 5)
    made = [finished(40, lines=12) for _ in range(10)]
    cut = retention.Cutoffs(
        jobs=clock.now() - timedelta(days=30),
        logs=None,
        deliveries=clock.now() - timedelta(days=7),
        now=clock.now(),
    )
    per_call = []
    while got := retention.prune_jobs(db, cut, delivery=False).counts["jobs"]:
        per_call.append(got)
        assert rows(db, jobs) == 10 - sum(per_call)  # committed batch by batch
    assert per_call == [4, 4, 2]
    assert not ids(db) & set(made)
    assert rows(db, logs) == 0


def test_a_dry_run_counts_what_a_prune_removes_and_changes_nothing(
    clocked: OpsService, db: Database, finished: Any, clock: SettableClock
) -> None:
    for days in (40, 35, 20, 15, 1):
        finished(days, lines=4)
    finished(9, template=retention.DELIVERY_TEMPLATE, lines=2)
    with db.write() as conn:
        for day in range(40):
            conn.execute(
                schedule_fires.insert().values(
                    schedule="nightly",
                    fire_at=clock.now() - timedelta(days=day),
                    status="fired",
                    recorded_at=clock.now(),
                )
            )
    before = {t.name: rows(db, t) for t in (jobs, logs, schedule_fires, events)}

    dry = clocked.prune(dry_run=True)

    assert {t.name: rows(db, t) for t in (jobs, logs, schedule_fires, events)} == before
    assert dry.dry_run
    assert dry.counts == {
        "jobs": 2,
        "deliveries": 1,
        "log_lines": 4 * 2 + 2 + 4 * 2,  # two jobs, one delivery, two jobs' old lines
        "fires": 9,  # days 31..39
        "check_results": 0,
        "workers": 0,
    }
    real = clocked.prune()
    assert real.counts == dry.counts
    assert clocked.prune(dry_run=True).total == 0


def test_check_results_are_capped_per_check(
    clocked: OpsService, db: Database, clock: SettableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "RESULTS_KEPT", 5)
    with db.write() as conn:
        for name, n in (("disk", 8), ("web", 3)):
            for _ in range(n):
                conn.execute(
                    check_results.insert().values(
                        check=name, at=clock.now(), status="ok", output="fine"
                    )
                )
        conn.execute(
            check_results.insert().values(
                check="old", at=clock.now() - timedelta(days=31), status="ok", output="x"
            )
        )

    assert clocked.prune().counts["check_results"] == 3 + 1

    assert rows(db, check_results, check_results.c.check == "disk") == 5
    assert rows(db, check_results, check_results.c.check == "web") == 3
    assert rows(db, check_results, check_results.c.check == "old") == 0


def test_stale_worker_rows_go_with_the_reapers_own_rule(
    clocked: OpsService, db: Database, clock: SettableClock
) -> None:
    old = clock.now() - timedelta(days=8)
    with db.write() as conn:
        for wid, state in (("w:1:dead", "dead"), ("w:2:live", "running")):
            conn.execute(
                workers.insert().values(
                    id=wid,
                    host="w",
                    pid=1,
                    slots=1,
                    desired_slots=1,
                    state=state,
                    started_at=old,
                    heartbeat_at=old,
                )
            )

    assert clocked.prune().counts["workers"] == 1
    with db.read() as conn:
        assert list(conn.execute(sa.select(workers.c.id)).scalars()) == ["w:2:live"]


def test_zero_retention_keeps_jobs_for_ever(
    settings: Any, clock: SettableClock, finished: Any
) -> None:
    from dataclasses import replace

    svc = OpsService(
        replace(settings, retention_jobs="0", retention_logs="0"),
        Database(settings.db),
        clock=clock,
    )
    try:
        old = finished(400)
        assert svc.prune().total == 0
        assert old in ids(svc.db)
        assert rows(svc.db, logs, logs.c.job_id == old) == 3
    finally:
        svc.db.dispose()


def test_one_process_per_period_takes_the_turn(db: Database, clock: SettableClock) -> None:
    now = clock.now()
    period = timedelta(minutes=10)
    other = Database(str(db.url))
    try:
        assert retention.take_turn(db, now, now + period)
        assert not retention.take_turn(other, now, now + period)
        assert not retention.take_turn(db, now + period / 2, now + period * 2)
        assert retention.take_turn(other, now + period, now + period * 2)
        assert not retention.take_turn(db, now + period, now + period * 2)
    finally:
        other.dispose()


def test_plan_files_of_pruned_jobs_go_but_only_inside_the_instance_workspaces(
    clocked: OpsService,
    db: Database,
    finished: Any,
    clock: SettableClock,
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from opsconsole.core.store.db import plans

    inside = clocked.settings.home / "instances" / "net" / "prod" / "plans" / "j-1.tfplan"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(b"plan")
    outside = tmp_path / "elsewhere.tfplan"
    outside.write_bytes(b"not ours")
    stuck = inside.with_name("j-2.tfplan")  # a directory: unlink refuses it, even as root
    stuck.mkdir()
    for path in (inside, outside, stuck):
        job = finished(40, lines=0)
        with db.write() as conn:
            conn.execute(
                plans.insert().values(
                    job_id=job,
                    attempt=1,
                    round=1,
                    template="net",
                    instance="prod",
                    hash="0" * 64,
                    summary={},
                    file=str(path),
                    created_at=clock.now(),
                )
            )

    view = clocked.prune()

    assert view.counts["jobs"] == 3 and view.plan_files == 1
    assert rows(db, plans) == 0
    assert not inside.exists()
    assert outside.read_bytes() == b"not ours"
    # a plan file that cannot be removed is said, never left quietly
    assert f"cannot remove plan file {stuck}" in caplog.text


@pytest.mark.sqlite_only
def test_candidates_are_found_by_time_through_an_index_never_a_scan_of_jobs(
    db: Database, clock: SettableClock
) -> None:
    def plan(query: Any) -> list[str]:
        with db.read() as conn:
            sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            return [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]

    now = clock.now()
    for delivery, index in ((False, "ix_jobs_history"), (True, "ix_jobs_template")):
        query = sa.select(jobs.c.id).where(*retention.prunable(now, delivery=delivery))
        steps = plan(query.limit(100))
        assert f"SEARCH jobs USING INDEX {index}" in steps[0], steps
        assert not any(s.startswith("SCAN jobs") for s in steps), steps
    with db.read() as conn:
        cond = retention.logs_due(conn, now)
    steps = plan(sa.select(jobs.c.id).where(*cond))
    assert "SEARCH jobs USING INDEX ix_jobs_history" in steps[0], steps


def test_a_damaged_turn_row_never_stops_pruning_for_good(
    db: Database, clock: SettableClock
) -> None:
    from opsconsole.core.store.db import meta

    with db.write() as conn:
        conn.execute(meta.insert().values(key=retention.NEXT_RUN_KEY, value="garbage"))
    now = clock.now()
    assert retention.take_turn(db, now, now + timedelta(minutes=10))
    assert not retention.take_turn(db, now, now + timedelta(minutes=10))
