"""``db prune``, ``db backup``, ``db vacuum`` and ``db check``: output, exit codes, refusals,
and a backup by the installed command while a real worker runs jobs."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_support import Cli, as_json, installed, ok, one_error_line
from support import wait_until

from opsconsole.config import Settings
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database, events, jobs, logs

OLD = datetime.now(UTC) - timedelta(days=45)


def put_old(service: OpsService, job_id: str, lines: int = 4) -> None:
    with service.db.write() as conn:
        job_store.insert_in(
            conn,
            {
                "id": job_id,
                "template": "echo",
                "state": "failed",
                "run_at": OLD,
                "created_at": OLD,
                "updated_at": OLD,
                "started_at": OLD,
                "finished_at": OLD,
            },
            (),
            actor="tester",
            now=OLD,
        )
        conn.execute(
            logs.insert(),
            [{"job_id": job_id, "seq": i, "ts": OLD, "line": "x"} for i in range(1, lines + 1)],
        )


def ids_in(store: Path | str) -> set[str]:
    """The job ids in a store: a SQLite file (a backup) or a store URL."""
    db = Database(store if isinstance(store, str) else f"sqlite:///{store}")
    try:
        with db.read() as conn:
            return set(conn.execute(sa.select(jobs.c.id)).scalars())
    finally:
        db.dispose()


def store_file(settings: Settings) -> Path:
    return Path(settings.db.removeprefix("sqlite:///"))


def test_prune_dry_run_says_what_it_would_remove_and_removes_nothing(
    cli: Cli, service: OpsService, settings: Settings
) -> None:
    put_old(service, "old001")
    put_old(service, "old002")

    dry = as_json(cli("db", "prune", "--dry-run", "--json"))

    assert dry["dry_run"] is True
    assert dry["counts"]["jobs"] == 2 and dry["counts"]["log_lines"] == 8
    assert ids_in(settings.db) == {"old001", "old002"}
    text = ok(cli("db", "prune", "--dry-run")).stdout
    assert "WOULD REMOVE" in text and "kept: audit events (job_events) of pruned jobs" in text


def test_prune_removes_and_keeps_the_audit_trail(
    cli: Cli, service: OpsService, settings: Settings
) -> None:
    put_old(service, "old001")

    done = as_json(cli("db", "prune", "--json"))

    assert done["counts"]["jobs"] == 1 and done["dry_run"] is False and done["complete"]
    assert ids_in(settings.db) == set()
    [pruned] = as_json(cli("audit", "--json", "--action", "prune"))["events"]
    assert pruned["kind"] == "pruned" and pruned["data"] == {"jobs": 1, "log_lines": 4}
    with service.db.read() as conn:
        kinds = list(
            conn.execute(sa.select(events.c.kind).where(events.c.job_id == "old001")).scalars()
        )
    assert kinds == ["submitted"]


def test_prune_refuses_an_older_than_shorter_than_a_running_job(
    cli: Cli, service: OpsService, settings: Settings
) -> None:
    put_old(service, "old001")
    started = datetime.now(UTC) - timedelta(hours=3)
    job_store.insert(
        service.db,
        {
            "id": "run001",
            "template": "echo",
            "state": "running",
            "run_at": started,
            "created_at": started,
            "updated_at": started,
            "started_at": started,
        },
        (),
        actor="tester",
        now=started,
    )

    result = cli("db", "prune", "--older-than", "1h")

    assert result.exit_code == 2
    line = one_error_line(result)
    assert "--older-than (1h) is shorter than the age of running job run001" in line
    assert ids_in(settings.db) == {"old001", "run001"}
    ok(cli("db", "prune", "--older-than", "1d"))
    assert ids_in(settings.db) == {"run001"}


def test_bad_retention_settings_are_one_line_and_exit_2(cli: Cli, monkeypatch) -> None:
    monkeypatch.setenv("OPSCONSOLE_RETENTION_JOBS", "a month")
    result = cli("db", "prune")
    assert result.exit_code == 2
    assert "retention_jobs: invalid duration 'a month'" in one_error_line(result)


@pytest.mark.sqlite_only
def test_backup_writes_a_private_copy_and_refuses_to_overwrite(
    cli: Cli, service: OpsService, tmp_path: Path
) -> None:
    put_old(service, "old001")
    dest = tmp_path / "copy.db"

    out = ok(cli("db", "backup", str(dest))).stdout
    assert out.startswith(f"backed up to {dest} (")
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert ids_in(dest) == {"old001"}

    again = cli("db", "backup", str(dest))
    assert again.exit_code == 2
    assert "exists (add --force to replace it)" in one_error_line(again)
    put_old(service, "old002")
    ok(cli("db", "backup", str(dest), "--force"))
    assert ids_in(dest) == {"old001", "old002"}


@pytest.mark.sqlite_only
def test_vacuum_and_check(cli: Cli, service: OpsService, settings: Settings) -> None:
    for i in range(100):
        put_old(service, f"old{i:03d}", lines=50)
    ok(cli("db", "prune"))
    size = as_json(cli("db", "vacuum", "--json"))
    assert size["bytes_after"] < size["bytes_before"]

    checked = as_json(cli("db", "check", "--json"))
    assert checked["healthy"] is True
    assert ok(cli("db", "check")).stdout.splitlines()[-1].startswith("ok   schema")


@pytest.mark.sqlite_only
def test_check_exits_1_on_a_damaged_store(
    cli: Cli, service: OpsService, settings: Settings, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from opsconsole.cli.app import app

    for i in range(30):
        put_old(service, f"old{i:03d}", lines=40)
    damaged = tmp_path / "damaged.db"
    ok(cli("db", "backup", str(damaged)))
    conn = sqlite3.connect(damaged)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='job_logs'").fetchone()[0]
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with damaged.open("r+b") as fh:
        fh.seek((root - 1) * page + 8)
        fh.write(b"\xff" * 64)

    result = CliRunner().invoke(
        app,
        ["--home", str(settings.home), "--db", f"sqlite:///{damaged}", "db", "check"],
        catch_exceptions=False,
    )

    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[0].startswith("FAIL integrity")


@pytest.mark.sqlite_only
def test_a_backup_by_the_installed_command_while_a_worker_runs_jobs(
    service: OpsService, settings: Settings, echo: str, tmp_path: Path
) -> None:
    for i in range(200):  # enough pages for the backup to take many steps
        put_old(service, f"old{i:03d}", lines=40)
    env = {
        **os.environ,
        "OPSCONSOLE_POLL_INTERVAL": "0.05",
        "OPSCONSOLE_HEARTBEAT_INTERVAL": "0.2",
        "OPSCONSOLE_LEASE": "3",
        "OPSCONSOLE_DRAIN_GRACE": "2",
    }
    worker = subprocess.Popen(
        installed(settings, "worker", "--workers", "2"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    submitter_db = Database(settings.db)
    submitter = OpsService(settings, submitter_db)
    stop = threading.Event()
    submitted: list[str] = []

    def submit_jobs() -> None:
        while not stop.wait(0.01):  # paced: a load beside the worker, not a lock hog
            submitted.append(submitter.submit(SubmitRequest(echo, {"msg": "load"})).id)

    thread = threading.Thread(target=submit_jobs)
    thread.start()
    try:
        try:
            wait_until(lambda: service.counts().get("succeeded", 0) >= 5, timeout=60)
        except AssertionError:
            worker.kill()
            raise AssertionError(f"the worker ran no job: {worker.communicate()[1]!r}") from None
        before = ids_in(settings.db)  # committed before the backup began
        dest = tmp_path / "under-load.db"
        done = subprocess.run(
            installed(settings, "db", "backup", str(dest)),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stop.set()
        thread.join(timeout=30)
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
        submitter_db.dispose()
    assert done.returncode == 0, done.stderr
    assert worker.returncode == 0, err
    conn = sqlite3.connect(dest)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        copied = {r[0] for r in conn.execute("SELECT id FROM jobs")}
        states = {r[0] for r in conn.execute("SELECT DISTINCT state FROM jobs")}
    finally:
        conn.close()
    assert before <= copied
    assert "succeeded" in states
    assert len(submitted) > len(before - {f"old{i:03d}" for i in range(200)})


def test_health_says_the_retention_and_the_last_periodic_prune(
    cli: Cli, service: OpsService, monkeypatch
) -> None:
    from opsconsole.engine import maintenance

    first = as_json(cli("health", "--json"))
    [line] = [c for c in first["checks"] if c["name"] == "retention"]
    assert line == {
        "name": "retention",
        "ok": True,
        "detail": "jobs 30d, log lines 14d; no periodic prune yet",
    }
    put_old(service, "old001")
    maintenance.maintain(service, service.now())
    [line] = [c for c in as_json(cli("health", "--json"))["checks"] if c["name"] == "retention"]
    assert line["ok"] and line["detail"].endswith(": 1 jobs, 4 log lines")

    monkeypatch.setenv("OPSCONSOLE_RETENTION_LOGS", "60d")
    bad = cli("health")
    assert bad.exit_code == 1
    [text] = [ln for ln in bad.stdout.splitlines() if ln[5:].startswith("retention")]
    assert text.startswith("FAIL retention")
    assert "must not be longer than retention_jobs" in text and "nothing is pruned" in text
