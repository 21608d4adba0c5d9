"""The installed `opsconsole worker` as a real process: wake-ups, drain and stop on signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import worker_env
from support import wait_until, write_template

from opsconsole.config import Settings
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.store.db import Database
from opsconsole.engine.pool import WorkerPool

BIN = Path(sys.executable).parent / "opsconsole"


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return worker_env(settings, **extra)


@pytest.fixture
def sleeper(catalog: Path) -> str:
    write_template(
        catalog,
        "sleeper",
        'runner: shell\ncommand: ["sleep", "{{ seconds }}"]\n'
        "params:\n  seconds: {type: number, default: 30}\n",
    )
    return "sleeper"


def test_a_submit_from_another_process_wakes_an_idle_worker_at_once(
    settings: Settings, service: OpsService, sleeper: str
) -> None:
    """Polling once an hour could not explain a pickup at all: the wake-up channel did it."""
    import dataclasses

    slow = dataclasses.replace(settings, poll_interval=3600.0)
    pool = WorkerPool(OpsService(slow, service.db), slots=1).start()
    try:
        # the claimer has looked once (a read) and sleeps on its condition
        wait_until(lambda: pool.busy() == 0 and pool.slots == 1, timeout=5)
        out = subprocess.run(
            [str(BIN), "submit", sleeper, "-p", "seconds=0", "--json"],
            env=_env(settings),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        job_id = json.loads(out.stdout)["id"]
        wait_until(lambda: service.get(job_id).started_at is not None, timeout=60)
    finally:
        pool.stop(grace=0.5)


def _start_worker(settings: Settings, **extra: str) -> subprocess.Popen[bytes]:
    log = Path(settings.home) / "worker.out"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [str(BIN), "worker", "--workers", "2"],
            env=_env(settings, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_first_sigterm_drains_and_records_what_did_not_finish(
    settings: Settings, service: OpsService, sleeper: str
) -> None:
    proc = _start_worker(settings, OPSCONSOLE_DRAIN_GRACE="1.5")
    try:
        quick = service.submit(SubmitRequest(sleeper, {"seconds": "0.8"}))
        slow = service.submit(SubmitRequest(sleeper, {"seconds": "60"}))
        wait_until(
            lambda: (
                service.get(quick.id).state == "running" and service.get(slow.id).state == "running"
            ),
            timeout=15,
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert service.get(quick.id).state == "succeeded"
    assert service.get(slow.id).state == "interrupted"
    later = service.submit(SubmitRequest(sleeper, {"seconds": "0"}))
    assert service.get(later.id).state == "queued"  # a drained worker claims nothing more
    assert not [w for w in service.workers() if w.alive]


def test_second_sigterm_stops_at_once(
    settings: Settings, service: OpsService, sleeper: str
) -> None:
    proc = _start_worker(settings, OPSCONSOLE_DRAIN_GRACE="3600")
    try:
        job = service.submit(SubmitRequest(sleeper, {"seconds": "3600"}))
        wait_until(lambda: service.get(job.id).state == "running", timeout=30)
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: any(w.state == "draining" for w in service.workers()), timeout=30)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)  # a drain would wait an hour for the job: this stopped it
    finally:
        if proc.poll() is None:
            proc.kill()
    assert service.get(job.id).state == "interrupted"


@pytest.mark.sqlite_only
def test_a_worker_whose_store_file_is_removed_stops_claiming_and_says_why(
    settings: Settings, service: OpsService, sleeper: str
) -> None:
    proc = _start_worker(settings)
    log = Path(settings.home) / "worker.out"
    try:
        wait_until(lambda: any(w.alive for w in service.workers()), timeout=30)
        db_file = Path(settings.db.removeprefix("sqlite:///"))
        for path in (db_file, *(db_file.with_name(db_file.name + s) for s in ("-wal", "-shm"))):
            path.unlink(missing_ok=True)
        # an operator's next command makes a new store where the old one was, and says so
        out = subprocess.run(
            [str(BIN), "submit", sleeper, "-p", "seconds=0", "--json"],
            env=_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert f"created a new store at {db_file}" in out.stderr
        assert proc.wait(timeout=60) == 5  # the store is unavailable to it: it stops
    finally:
        if proc.poll() is None:
            proc.kill()
    said = log.read_text()
    assert "the store file was removed while this process had it open" in said
    # the worker never ran the job of a store it cannot see
    job_id = json.loads(out.stdout)["id"]
    new_store = Database(settings.db)
    try:
        assert OpsService(settings, new_store).get(job_id).state == "queued"
    finally:
        new_store.dispose()
