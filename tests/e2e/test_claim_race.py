"""Real worker processes race for one queue (``pytest --store=postgresql`` runs it on
PostgreSQL, where their claims truly run side by side): a limit-1 key never runs two jobs at
once, a limit-3 key never four, a capped team never more than its cap, and every job runs
exactly once."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_support import stop_processes, worker_env
from support import run_interval, wait_until, write_template

from opsconsole.config import Settings, load_settings
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.store.db import Database, events, jobs

BIN = Path(sys.executable).parent / "opsconsole"
ROOT_USER = pwd.getpwuid(os.getuid()).pw_name
WORKERS = 3
SLOTS = 4
# each run stamps its own start and end: the job process's own times, inside the interval
# the store had it running, so two stamped runs that overlap were running at once
STAMPED = (
    "runner: shell\n"
    "command: [sh, -c, 'echo start $(date +%s.%N); sleep 0.15; echo end $(date +%s.%N)']\n"
)
MIX = {"solo": 12, "trio": 15, "web-task": 10, "plain": 15}


@pytest.fixture
def racing_store(home: Path, catalog: Path, store_url: str) -> Iterator[OpsService]:
    toml = home / "opsconsole.toml"
    toml.write_text(f'[teams.web]\nmembers = ["user:{ROOT_USER}"]\nmax_concurrent = 2\n')
    toml.chmod(0o644)
    write_template(catalog, "solo", STAMPED + "concurrency: {key: solo, limit: 1}\n")
    write_template(catalog, "trio", STAMPED + "concurrency: {key: trio, limit: 3}\n")
    write_template(catalog, "web-task", STAMPED + "team: web\n")
    write_template(catalog, "plain", STAMPED)
    settings = load_settings(home=home, catalog=catalog, db=store_url)
    db = Database(settings.db)
    yield OpsService(settings, db)
    db.dispose()


def _env(settings: Settings) -> dict[str, str]:
    return worker_env(settings, OPSCONSOLE_POLL_INTERVAL="0.05")


def _most_at_once(runs: list[tuple[float, float]]) -> int:
    return max(sum(1 for s, e in runs if s <= start < e) for start, _ in runs)


@pytest.mark.slow
def test_worker_processes_racing_for_one_queue_keep_every_limit(
    racing_store: OpsService,
) -> None:
    svc = racing_store
    procs = []
    for i in range(WORKERS):
        with (Path(svc.settings.home) / f"worker{i}.out").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [str(BIN), "worker", "--workers", str(SLOTS)],
                    env=_env(svc.settings),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        wait_until(lambda: len(svc.workers()) == WORKERS, timeout=60)
        ids = {
            name: [svc.submit(SubmitRequest(name)).id for _ in range(n)] for name, n in MIX.items()
        }
        every = [i for group in ids.values() for i in group]
        wait_until(lambda: all(svc.get(i).state.value == "succeeded" for i in every), timeout=120)
    finally:
        stop_processes(procs)
    for i in range(WORKERS):
        log = (Path(svc.settings.home) / f"worker{i}.out").read_text()
        assert "Traceback" not in log, log
        assert "cannot claim" not in log, log
    runs = {name: [run_interval(svc, i) for i in group] for name, group in ids.items()}
    assert _most_at_once(runs["solo"]) == 1, sorted(runs["solo"])
    assert _most_at_once(runs["trio"]) <= 3, sorted(runs["trio"])
    assert _most_at_once(runs["web-task"]) <= 2, sorted(runs["web-task"])
    with svc.db.read() as conn:
        attempts = dict(conn.execute(sa.select(jobs.c.id, jobs.c.attempts)).all())
        started = dict(
            conn.execute(
                sa.select(events.c.job_id, sa.func.count())
                .where(events.c.kind == "started")
                .group_by(events.c.job_id)
            ).all()
        )
        by = conn.execute(sa.select(sa.func.count(sa.distinct(jobs.c.worker)))).scalar()
    assert attempts == dict.fromkeys(every, 1)  # every job ran exactly once
    assert started == dict.fromkeys(every, 1)
    assert by and by >= 2  # the queue was shared, not drained by one process
