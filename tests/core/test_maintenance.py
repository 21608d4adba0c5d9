"""The maintenance API: retention settings checked, backups under load, vacuum, store checks,
and the pool's periodic prune (once across processes, within a time budget)."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import stat
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import wait_until

from opsconsole.config import Settings, load_settings
from opsconsole.core.clock import SettableClock
from opsconsole.core.errors import InvalidParams
from opsconsole.core.maintenance import Retention
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.store import backup as backup_store
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store import retention
from opsconsole.core.store.db import Database, jobs, logs
from opsconsole.engine import maintenance

S = JobState


def put_finished(db: Database, job_id: str, at: Any, lines: int = 20) -> None:
    """A finished job with log lines, in one transaction (what a worker's finish leaves)."""
    with db.write() as conn:
        job_store.insert_in(
            conn,
            {
                "id": job_id,
                "template": "echo",
                "state": "succeeded",
                "run_at": at,
                "created_at": at,
                "updated_at": at,
                "started_at": at,
                "finished_at": at,
            },
            (),
            actor="tester",
            now=at,
        )
        conn.execute(
            logs.insert(),
            [
                {"job_id": job_id, "seq": i, "ts": at, "line": f"{job_id} line {i} " + "x" * 80}
                for i in range(1, lines + 1)
            ],
        )


def job_ids(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM jobs")}
    finally:
        conn.close()


# -- retention settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jobs_", "logs_", "message"),
    [
        ("forever", "14d", r"^retention_jobs: invalid duration 'forever'"),
        ("30d", "-1d", r"^retention_logs: invalid duration '-1d'"),
        ("7d", "14d", r"^retention_logs \(14d\) must not be longer than retention_jobs \(7d\)"),
    ],
)
def test_bad_retention_settings_are_refused_in_one_line_naming_the_setting(
    settings: Settings, jobs_: str, logs_: str, message: str
) -> None:
    with pytest.raises(InvalidParams, match=message) as caught:
        Retention.of(replace(settings, retention_jobs=jobs_, retention_logs=logs_))
    assert "\n" not in str(caught.value)


def test_retention_settings_parse_and_zero_keeps(settings: Settings) -> None:
    assert Retention.of(settings) == Retention(30 * 86400.0, 14 * 86400.0)
    keep = Retention.of(replace(settings, retention_jobs="0", retention_logs="12h"))
    assert keep == Retention(None, 12 * 3600.0)


def test_a_worker_refuses_to_start_on_bad_retention(
    home: Path, catalog: Path, store_url: str
) -> None:
    from opsconsole.runtime import open_service, start_pool

    bad = load_settings(home=home, catalog=catalog, db=store_url, retention_logs="60d")
    svc = open_service(bad)
    try:
        with pytest.raises(InvalidParams, match="retention_logs"):
            start_pool(svc, slots=1)
    finally:
        svc.db.dispose()


# -- backups -----------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_a_backup_taken_under_load_restores_every_job_committed_before_it_began(
    service: OpsService, settings: Settings, tmp_path: Path
) -> None:
    now = service.now()
    for i in range(300):  # a few MB, so the backup takes many steps
        put_finished(service.db, f"seed{i:04d}", now)
    writer_db = Database(settings.db)
    written: list[str] = []
    stop = threading.Event()

    def write_jobs() -> None:
        n = 0
        while not stop.is_set():
            job_id = f"load{n:05d}"
            put_finished(writer_db, job_id, service.now(), lines=5)
            written.append(job_id)
            n += 1

    thread = threading.Thread(target=write_jobs)
    thread.start()
    steps: list[tuple[int, int]] = []
    try:
        wait_until(lambda: len(written) >= 5)
        before = job_ids(Path(settings.db.removeprefix("sqlite:///")))  # committed by now

        during: list[str] = []

        def step(done: int, total: int) -> None:
            if not steps:
                # writers commit while the backup holds its snapshot: they are not blocked
                seen = len(written)
                wait_until(lambda: len(written) >= seen + 3, timeout=30)
                during.extend(written[seen : seen + 3])
            steps.append((done, total))

        dest = tmp_path / "backups" / "copy.db"
        dest.parent.mkdir()
        copied = backup_store.backup(service.db, dest, step=16, progress=step)
    finally:
        stop.set()
        thread.join(timeout=30)
        writer_db.dispose()

    assert len(steps) > 3, steps  # really in steps
    assert copied.path == dest
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert [p.name for p in dest.parent.iterdir()] == ["copy.db"]  # no partial file left
    conn = sqlite3.connect(dest)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    # restore: the copy in place of a store, opened like any store
    restored = tmp_path / "restored" / "opsconsole.db"
    restored.parent.mkdir()
    shutil.copyfile(dest, restored)
    db = Database(f"sqlite:///{restored}")
    try:
        db.ensure_schema()
        with db.read() as c:
            found = set(c.execute(sa.select(jobs.c.id)).scalars())
            lines = c.execute(
                sa.select(sa.func.count()).select_from(logs).where(logs.c.job_id.in_(before))
            ).scalar_one()
    finally:
        db.dispose()
    assert before <= found
    # a copy of one moment: what was committed once it had begun is not in it
    assert len(during) == 3 and not found & set(during)
    assert lines == 300 * 20 + 5 * (len(before) - 300)
    assert len(found) < 300 + len(written)  # the copy is of a moment, not of the end


@pytest.mark.sqlite_only
def test_a_backup_refuses_an_existing_file_unless_forced(
    service: OpsService, tmp_path: Path
) -> None:
    dest = tmp_path / "copy.db"
    dest.write_text("precious")
    with pytest.raises(InvalidParams, match=r"^FILE: .*copy.db exists \(add --force"):
        service.backup(dest)
    assert dest.read_text() == "precious"
    service.backup(dest, force=True)
    assert job_ids(dest) == set()
    with pytest.raises(InvalidParams, match="is the store itself"):
        service.backup(Path(str(service.db.path)), force=True)
    with pytest.raises(InvalidParams, match="does not exist"):
        service.backup(tmp_path / "nowhere" / "copy.db")


def test_the_postgresql_backup_hint_is_the_pg_dump_command_without_the_password() -> None:
    url = sa.make_url("postgresql://ops:s3cret@db.example:5433/opsconsole")
    hint = backup_store.pg_dump_hint(url, "/backups/ops.dump")
    assert hint == (
        "pg_dump --format=custom --file /backups/ops.dump -h db.example -p 5433 -U ops opsconsole"
    )
    assert "s3cret" not in hint
    # a store on the local socket: its directory and port come from the URL's query
    sock = sa.make_url("postgresql+psycopg://ops@/opsconsole?host=/run/my pg&port=5999")
    assert backup_store.pg_dump_hint(sock, "/backups/ops.dump") == (
        "pg_dump --format=custom --file /backups/ops.dump -h '/run/my pg' -p 5999 -U ops opsconsole"
    )


@pytest.mark.sqlite_only
def test_vacuum_gives_pruned_space_back(clocked: OpsService, clock: SettableClock) -> None:
    for i in range(200):
        put_finished(clocked.db, f"old{i:04d}", clock.now() - timedelta(days=40))
    clocked.prune()
    before, after = clocked.vacuum()
    assert before is not None and after is not None
    assert after < before


@pytest.mark.sqlite_only
def test_check_passes_on_a_sound_store_and_fails_on_a_damaged_one(
    service: OpsService, tmp_path: Path
) -> None:
    view = service.check_store()
    assert [c.name for c in view.checks] == ["integrity", "foreign keys", "journal", "schema"]
    assert view.healthy

    for i in range(50):
        put_finished(service.db, f"j{i:04d}", service.now())
    copy = tmp_path / "damaged.db"
    service.backup(copy)
    conn = sqlite3.connect(copy)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='job_logs'").fetchone()[0]
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with copy.open("r+b") as fh:  # scribble over an index page of job_logs
        fh.seek((root - 1) * page + 8)
        fh.write(b"\xff" * 64)
    db = Database(f"sqlite:///{copy}")
    try:
        damaged = OpsService(service.settings, db).check_store()
    finally:
        db.dispose()
    assert not damaged.healthy
    assert not next(c for c in damaged.checks if c.name == "integrity").ok


# -- the pool's periodic prune -----------------------------------------------------------


def test_maintain_prunes_once_per_period_across_processes(
    clocked: OpsService, settings: Settings, clock: SettableClock, caplog: Any
) -> None:
    other = OpsService(settings, Database(settings.db), clock=clock)
    try:
        put_finished(clocked.db, "old00001", clock.now() - timedelta(days=40))
        with caplog.at_level(logging.INFO, logger="opsconsole.maintenance"):
            first = maintenance.maintain(clocked, clock.now())
            second = maintenance.maintain(other, clock.now())
        assert first is not None and first.counts["jobs"] == 1
        assert second is None  # not its turn
        assert [r.getMessage() for r in caplog.records] == [
            "maintenance: pruned 1 jobs, 20 log lines"
        ]
        put_finished(clocked.db, "old00002", clock.now() - timedelta(days=40))
        clock.advance(60)
        assert maintenance.maintain(other, clock.now()) is None
        clock.advance(maintenance.EVERY.total_seconds())
        again = maintenance.maintain(other, clock.now())
        assert again is not None and again.counts["jobs"] == 1
    finally:
        other.db.dispose()


def test_maintain_stops_at_its_budget_and_continues_within_a_minute(
    clocked: OpsService, clock: SettableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "JOB_BATCH", 2)
    monkeypatch.setattr(maintenance, "BUDGET", 0.0)  # each turn: stop after its first check
    for i in range(5):
        put_finished(clocked.db, f"old{i:05d}", clock.now() - timedelta(days=40), lines=1)

    first = maintenance.maintain(clocked, clock.now())
    assert first is not None and not first.complete
    clock.advance(30)
    assert maintenance.maintain(clocked, clock.now()) is None
    clock.advance(30)  # within a minute, not ten
    assert maintenance.maintain(clocked, clock.now()) is not None


def test_maintain_refuses_bad_retention_before_it_prunes(
    settings: Settings, clock: SettableClock
) -> None:
    bad = OpsService(
        replace(settings, retention_jobs="1d", retention_logs="2d"),
        Database(settings.db),
        clock=clock,
    )
    try:
        with pytest.raises(InvalidParams, match="retention_logs"):
            maintenance.maintain(bad, clock.now())
    finally:
        bad.db.dispose()


def test_the_pools_maintenance_timer_prunes(clocked: OpsService, clock: SettableClock) -> None:
    from opsconsole.engine.pool import WorkerPool

    put_finished(clocked.db, "old00001", clock.now() - timedelta(days=40))
    pool = WorkerPool(clocked, slots=1)  # not started: its timers are driven by hand
    pool.maintain(clock.now())
    with clocked.db.read() as conn:
        assert conn.execute(sa.text("SELECT id FROM jobs")).all() == []
