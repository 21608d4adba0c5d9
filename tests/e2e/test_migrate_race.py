"""Migrations across processes on PostgreSQL: serialised by an advisory lock, and refused
under running jobs' leases unless forced.

Four real worker processes start at once on an empty database: one migrates, the others
wait for its lock and find the schema current; none crashes. ``opsconsole db upgrade``
runs the migrations explicitly.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from fleet_support import BIN, fleet, worker_env
from support import wait_until, write_template

from opsconsole.config import load_settings
from opsconsole.core.clock import SystemClock
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store.db import SCHEMA_REVISION, Database

pytestmark = pytest.mark.slow


def _revision(url: str) -> str | None:
    db = Database(url)
    try:
        return db.current_revision()
    finally:
        db.dispose()


def test_four_workers_starting_at_once_on_an_empty_database_one_migrates(
    pg_url: str, home: Path, catalog: Path, tmp_path: Path
) -> None:
    assert _revision(pg_url) is None
    with fleet(pg_url, home, catalog, tmp_path / "logs") as f:
        started = [f.start(f"w{i}", host=f"host-{i}", slots=1) for i in range(4)]
        db = Database(pg_url)
        try:

            def registered() -> list[str]:
                ended = [w.output()[-2000:] for w in started if w.proc.poll() is not None]
                assert not ended, ended  # a crash fails now, not at the timeout
                if db.current_revision() != SCHEMA_REVISION:
                    return []
                return [w["id"] for w in claim_store.list_workers(db)]

            wait_until(lambda: len(registered()) == 4, timeout=45)
            wait_until(lambda: all(w.running() for w in started), timeout=30)
            hosts = {w["host_id"] for w in claim_store.list_workers(db)}
        finally:
            db.dispose()
        crashed = [(w.name, w.output()) for w in started if w.proc.poll() is not None]
        assert not crashed
        assert hosts == {f"host-{i}" for i in range(4)}
    for w in started:
        assert w.proc.returncode == 0, w.output()
        assert "Traceback" not in w.output()
    migrated = [w.name for w in started if "Running upgrade  -> 0001" in w.output()]
    assert len(migrated) == 1, migrated
    assert _revision(pg_url) == SCHEMA_REVISION


def _cli(url: str, home: Path, catalog: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        env=worker_env(url, home, catalog),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_db_upgrade_migrates_an_empty_database_then_says_it_is_current(
    pg_url: str, home: Path, catalog: Path
) -> None:
    first = _cli(pg_url, home, catalog, "db", "upgrade", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["from"] is None
    assert json.loads(first.stdout)["to"] == SCHEMA_REVISION
    again = _cli(pg_url, home, catalog, "db", "upgrade")
    assert again.returncode == 0, again.stderr
    assert f"already at revision {SCHEMA_REVISION}" in again.stdout


def _downgrade_one(url: str) -> str:
    """Take the store one revision back (as if an older opsconsole had made it)."""
    from alembic import command
    from alembic.config import Config

    import opsconsole.core.store.db as dbmod

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(dbmod.__file__).parents[2] / "migrations"))
    db = Database(url)
    try:
        with db.write() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "-1")
        rev = db.current_revision()
    finally:
        db.dispose()
    assert rev is not None and rev != SCHEMA_REVISION
    return rev


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, home: Path) -> str:
    """An empty store of each backend (the store file does not exist yet on SQLite)."""
    if request.param == "sqlite":
        return f"sqlite:///{home / 'opsconsole.db'}"
    return str(request.getfixturevalue("pg_url"))


def test_db_upgrade_refuses_while_a_running_job_holds_its_lease_unless_forced(
    any_url: str, home: Path, catalog: Path
) -> None:
    pg_url = any_url
    write_template(catalog, "hello", 'runner: shell\ncommand: ["true"]\n')
    settings = load_settings(home=home, catalog=catalog, db=pg_url)
    db = Database(pg_url)
    db.ensure_schema()
    try:
        svc = OpsService(settings, db, clock=SystemClock())
        job = svc.submit(SubmitRequest("hello", {})).id
        claimed = claim_store.claim(db, "old-host:1:abcd", svc.now(), 600.0)
        assert claimed is not None and claimed["id"] == job
    finally:
        db.dispose()
    old = _downgrade_one(pg_url)

    refused = _cli(pg_url, home, catalog, "db", "upgrade")
    assert refused.returncode == 5
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "1 running job(s) hold leases" in refused.stderr
    assert "--force" in refused.stderr
    assert _revision(pg_url) == old
    if pg_url.startswith("postgresql"):
        # a worker opening the store does not upgrade it under the lease either (on SQLite,
        # a one-host store, opening it upgrades it as before)
        worker = _cli(pg_url, home, catalog, "worker", "--once")
        assert worker.returncode == 5, worker.stderr
        assert "hold leases" in worker.stderr and "Traceback" not in worker.stderr
        assert _revision(pg_url) == old

    forced = _cli(pg_url, home, catalog, "db", "upgrade", "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"from revision {old} to {SCHEMA_REVISION}" in forced.stdout
    assert _revision(pg_url) == SCHEMA_REVISION
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            state = conn.execute(
                sa.text("SELECT state FROM jobs WHERE id = :id"), {"id": job}
            ).scalar()
    finally:
        engine.dispose()
    assert state == "running"  # the forced upgrade left the job alone
