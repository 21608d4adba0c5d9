"""A team's max_concurrent across two real worker processes, and a freeze they both obey."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import stop_processes, worker_env
from support import run_interval, wait_until, write_template

from opsconsole.config import Settings, load_settings
from opsconsole.core.freezes import FreezeRequest
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.store.db import Database

BIN = Path(sys.executable).parent / "opsconsole"
CAP = 2
JOBS = 10
ROOT_USER = pwd.getpwuid(os.getuid()).pw_name


def _env(settings: Settings) -> dict[str, str]:
    return worker_env(settings, OPSCONSOLE_POLL_INTERVAL="0.05")


@pytest.fixture
def team_store(home: Path, catalog: Path, store_url: str) -> Iterator[OpsService]:
    """A store whose opsconsole.toml caps team web at CAP running jobs."""
    toml = home / "opsconsole.toml"
    toml.write_text(f'[teams.web]\nmembers = ["user:{ROOT_USER}"]\nmax_concurrent = {CAP}\n')
    toml.chmod(0o644)
    # each run stamps its own start and end: the process's own times, so a run that ended
    # (and was recorded) before the next was claimed can never look like an overlap
    write_template(
        catalog,
        "web-task",
        "team: web\nrunner: shell\n"
        "command: [sh, -c, 'echo start $(date +%s.%N); sleep 0.4; echo end $(date +%s.%N)']\n",
    )
    write_template(catalog, "other-task", 'runner: shell\ncommand: ["true"]\n')
    settings = load_settings(home=home, catalog=catalog, db=store_url)
    assert settings.policy.team_caps() == {"web": CAP}
    db = Database(settings.db)
    yield OpsService(settings, db)
    db.dispose()


def _workers(settings: Settings, n: int, slots: int = 3) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(n):
        with (Path(settings.home) / f"worker{i}.out").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [str(BIN), "worker", "--workers", str(slots)],
                    env=_env(settings),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    return procs


@pytest.mark.slow
def test_two_worker_processes_never_run_more_than_the_teams_cap(team_store: OpsService) -> None:
    svc = team_store
    # three one-slot processes for a team allowed two: the cap binds, and two runs at once
    # can only be two processes' (a process with free slots that holds both places would
    # keep them forever, which says nothing about the cap across processes)
    procs = _workers(svc.settings, 3, slots=1)
    try:
        # every worker up before the first job: on a loaded machine a late one would find
        # the queue drained
        wait_until(lambda: len(svc.workers()) == 3, timeout=60)
        ids = [svc.submit(SubmitRequest("web-task")).id for _ in range(JOBS)]
        wait_until(lambda: all(svc.get(i).state.value == "succeeded" for i in ids), timeout=120)
    finally:
        stop_processes(procs)
    runs = sorted(run_interval(svc, i) for i in ids)
    # the most runs alive at once: at each start, count the runs that started and not ended
    most = max(sum(1 for s, e in runs if s <= start < e) for start, _ in runs)
    assert most <= CAP, runs
    assert most == CAP  # both places were used at once, so by two processes
    assert len({svc.get(i).worker for i in ids}) >= 2


@pytest.mark.slow
def test_a_freeze_holds_jobs_from_running_workers_and_a_lift_releases_them(
    team_store: OpsService,
) -> None:
    svc = team_store
    freeze = svc.set_freeze(FreezeRequest(reason="change window", team="web"))
    procs = _workers(svc.settings, 1)
    try:
        wait_until(lambda: any(w.alive for w in svc.workers()), timeout=30)
        job = svc.submit(SubmitRequest("web-task")).id
        later = svc.submit(SubmitRequest("other-task")).id
        # the later job ran: the worker's claim passed over the older, frozen one
        wait_until(lambda: svc.get(later).state.value == "succeeded", timeout=60)
        assert svc.get(job).state.value == "queued"
        assert svc.get(job).frozen == "frozen: change window (until lifted)"
        svc.lift_freeze(freeze.id)
        wait_until(lambda: svc.get(job).state.value == "succeeded", timeout=60)
    finally:
        stop_processes(procs)
