"""Ctrl-C while waiting for or following a job: the job goes on, and the command says how to
reach it. The installed command in a subprocess, interrupted by a real SIGINT."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import installed, submit
from support import wait_until, write_template

from opsconsole.config import Settings
from opsconsole.core.service import OpsService

pytestmark = pytest.mark.slow


@pytest.fixture
def launch(settings: Settings, tmp_path: Path) -> Iterator[object]:
    """Start ``opsconsole ARGS`` on the test's store; stderr and stdout go to files."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
        n = len(procs)
        out, err = tmp_path / f"out{n}", tmp_path / f"err{n}"
        argv = installed(settings, *args)
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        procs.append(proc)
        return proc, out, err

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def interrupt(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=30)


def test_ctrl_c_during_submit_wait_says_the_job_keeps_running(
    launch, echo: str, service: OpsService
):
    proc, _out, err = launch("submit", echo, "--wait")
    wait_until(lambda: "no live worker" in err.read_text(), timeout=30)
    assert interrupt(proc) == 130
    [job] = service.queue()
    assert job.state.value == "queued"  # Ctrl-C did not cancel it
    said = err.read_text()
    assert (
        f"opsconsole: stopped waiting; job {job.id} keeps running (Ctrl-C does not cancel it). "
        f"Follow it: opsconsole logs -f {job.id}; cancel it: opsconsole jobs cancel {job.id}"
    ) in said
    assert "Traceback" not in said


def test_ctrl_c_during_jobs_wait_says_how_to_follow_or_cancel(cli, launch, echo: str):
    job = submit(cli, echo)
    proc, _out, err = launch("jobs", "wait", job["id"])
    wait_until(lambda: "no live worker" in err.read_text(), timeout=30)
    assert interrupt(proc) == 130
    assert f"cancel it: opsconsole jobs cancel {job['id']}" in err.read_text()


def test_ctrl_c_during_logs_follow_leaves_the_job_running(
    cli, launch, catalog: Path, service: OpsService, start_pool
):
    write_template(
        catalog, "chatty", "runner: shell\ncommand: [sh, -c, 'echo started; sleep 30']\n"
    )
    start_pool()
    job = submit(cli, "chatty")
    wait_until(lambda: service.get(job["id"]).state.value == "running", timeout=30)
    proc, out, err = launch("logs", job["id"], "--follow")
    wait_until(lambda: "started" in out.read_text(), timeout=30)
    assert interrupt(proc) == 130
    assert service.get(job["id"]).state.value == "running"
    assert (
        f"opsconsole: stopped following; job {job['id']} keeps running (Ctrl-C does not cancel "
        f"it): cancel it with opsconsole jobs cancel {job['id']}"
    ) in err.read_text()
    service.cancel(job["id"])
