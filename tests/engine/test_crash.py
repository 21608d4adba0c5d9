"""A worker killed with SIGKILL mid-job, and the worker that comes after it.

The first worker is a real process (``runtime.start_pool(...).run_forever()``); the second
runs in the test. The second must kill what the first left running, then mark or requeue
each job by its ``on_interrupt``, without running anything twice at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_faults import write_lock
from support import stuck_in_a_system_call, wait_until, write_template

from opsconsole.config import Settings
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import FINAL, JobState
from opsconsole.core.store.db import sqlite_path
from opsconsole.core.views import JobView
from opsconsole.engine.procs import find_marked, pid_alive

S = JobState
pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")


def final(service: OpsService, job_id: str, timeout: float = 10.0) -> JobView:
    return wait_until(lambda: (v := service.get(job_id)).state in FINAL and v, timeout)


def bash(script: str) -> str:
    lines = "".join(f"    {line}\n" for line in script.strip("\n").splitlines())
    return f"command:\n  - bash\n  - -c\n  - |\n{lines}"


class Runs:
    """The file every attempt appends ``<template> <attempt> <pid> <what>`` lines to."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self) -> list[tuple[str, int, int, str]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            name, attempt, pid, what = line.split()
            out.append((name, int(attempt), int(pid), what))
        return out

    def pids(self, name: str, attempt: int) -> list[int]:
        return [p for n, a, p, _ in self.rows() if n == name and a == attempt]

    def count(self, name: str, what: str) -> int:
        return sum(1 for n, _, _, w in self.rows() if n == name and w == what)


@pytest.fixture
def worker_process(settings: Settings, tmp_path: Path) -> Iterator[Any]:
    """Start ``opsconsole``'s worker in a separate process; killed at the end in any case."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        code = (
            "from opsconsole.config import load_settings\n"
            "from opsconsole.runtime import open_service, start_pool\n"
            f"s = load_settings(home={str(settings.home)!r}, catalog={str(settings.catalog)!r},"
            f" db={settings.db!r}, lease=2, heartbeat_interval=0.2, kill_grace=0.5,"
            " poll_interval=0.05)\n"
            "start_pool(open_service(s), slots=2).run_forever()\n"
        )
        out = (tmp_path / f"worker-{len(procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
        )
        out.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_kill_9_of_a_worker_then_a_new_worker(
    service: OpsService,
    catalog: Path,
    start_pool: Any,
    worker_process: Any,
    tmp_path: Path,
) -> None:
    runs = Runs(tmp_path / "runs")
    for name, mode in (("crash-mark", "mark"), ("crash-requeue", "requeue")):
        write_template(
            catalog,
            name,
            f"on_interrupt: {mode}\n"
            + bash(
                f"""
echo "{name} $OPSCONSOLE_ATTEMPT $$ started" >> {runs.path}
# a later attempt must never meet a process of an earlier one still alive
for p in $(awk '$1 == "{name}" && $2 < '"$OPSCONSOLE_ATTEMPT"' {{print $3}}' {runs.path}); do
  state=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null)
  case "$state" in ''|Z|X) ;; *) echo "{name} $OPSCONSOLE_ATTEMPT $p overlap" >> {runs.path};; esac
done
if [ "$OPSCONSOLE_ATTEMPT" -gt 1 ]; then exit 0; fi
sleep 30 &
echo "{name} $OPSCONSOLE_ATTEMPT $! child" >> {runs.path}
wait
"""
            ),
        )
    mark = service.submit(SubmitRequest("crash-mark")).id
    requeue = service.submit(SubmitRequest("crash-requeue")).id

    old = worker_process()
    wait_until(lambda: len(runs.pids("crash-mark", 1)) == len(runs.pids("crash-requeue", 1)) == 2)
    for job_id in (mark, requeue):
        view = service.get(job_id)
        assert view.state == S.RUNNING
        assert view.worker is not None and f":{old.pid}:" in view.worker

    os.kill(old.pid, signal.SIGKILL)
    old.wait(5)
    leftovers = runs.pids("crash-mark", 1) + runs.pids("crash-requeue", 1)
    assert all(pid_alive(p) for p in leftovers), "the jobs should outlive their worker"

    start_pool(2)  # the new worker settles the old one's jobs as it starts

    view = final(service, mark)
    assert view.state == S.INTERRUPTED
    assert view.attempts == 1
    assert view.error is not None and f":{old.pid}:" in view.error["message"]
    view = final(service, requeue)
    assert view.state == S.SUCCEEDED
    assert view.attempts == 2

    assert [p for p in leftovers if pid_alive(p)] == []
    for job_id in (mark, requeue):
        assert find_marked(f"{job_id}.1") == []
    assert runs.count("crash-mark", "started") == 1
    assert runs.count("crash-requeue", "started") == 2
    assert runs.count("crash-requeue", "overlap") == 0

    def kinds(job_id: str) -> list[str]:
        return [e.kind for e in service.get(job_id, with_events=True).events or ()]

    assert kinds(mark).count("started") == 1
    assert kinds(requeue).count("started") == 2
    k = kinds(requeue)
    assert k.index("requeued") < [i for i, kind in enumerate(k) if kind == "started"][1]
    dead = [w for w in service.workers(include_stopped=True) if f":{old.pid}:" in w.id]
    assert [w.state for w in dead] == ["dead"]
    log = service.logs_since(mark)
    assert any(ln.stream == "meta" and "interrupted" in ln.text for ln in log)


def test_a_frozen_worker_that_comes_back_cannot_touch_its_successors_attempt(
    settings: Settings,
    service: OpsService,
    catalog: Path,
    start_pool: Any,
    worker_process: Any,
    tmp_path: Path,
) -> None:
    runs = Runs(tmp_path / "runs")
    gate = tmp_path / "gate"
    write_template(
        catalog,
        "frozen",
        "on_interrupt: requeue\n"
        + bash(
            f"""
echo "frozen $OPSCONSOLE_ATTEMPT $$ started" >> {runs.path}
echo "attempt $OPSCONSOLE_ATTEMPT says hello"
if [ "$OPSCONSOLE_ATTEMPT" -gt 1 ]; then
  while [ ! -e {gate} ]; do sleep 0.02; done
  exit 0
fi
sleep 30 &
echo "frozen $OPSCONSOLE_ATTEMPT $! child" >> {runs.path}
wait
"""
        ),
    )
    job = service.submit(SubmitRequest("frozen")).id
    old = worker_process()
    wait_until(lambda: len(runs.pids("frozen", 1)) == 2)
    wait_until(lambda: any(ln.stream == "out" for ln in service.logs_since(job)))
    first = runs.pids("frozen", 1)

    # SQLite: frozen while we hold the write lock, so it cannot be frozen inside a write of
    # its own (which would lock every other process out of the store). PostgreSQL ends a
    # session frozen inside a transaction itself (``db.IDLE_IN_TRANSACTION_MS``).
    path = sqlite_path(settings.db)
    with write_lock(path) if path is not None else contextlib.nullcontext():
        os.kill(old.pid, signal.SIGSTOP)  # alive but silent: only its lease running out tells
    try:
        pool = start_pool(1)
        view = wait_until(
            lambda: (v := service.get(job)).attempts == 2 and v.state == S.RUNNING and v, 20
        )
        assert view.worker == pool.id
        assert [p for p in first if pid_alive(p)] == []
        assert find_marked(f"{job}.1") == []
    finally:
        os.kill(old.pid, signal.SIGCONT)

    def old_heartbeats() -> int:
        row = next(w for w in service.workers(include_stopped=True) if f":{old.pid}:" in w.id)
        seen.add(row.heartbeat_at)
        return len(seen) >= 3

    seen: set[Any] = set()
    wait_until(old_heartbeats, 5)  # the old worker is back and has looked at its runs
    view = service.get(job)
    assert (view.state, view.attempts, view.worker) == (S.RUNNING, 2, pool.id)
    gate.touch()
    view = final(service, job)
    assert (view.state, view.attempts) == (S.SUCCEEDED, 2)
    kinds = [e.kind for e in service.get(job, with_events=True).events or ()]
    assert kinds == ["submitted", "started", "requeued", "started", "succeeded"]
    assert runs.count("frozen", "started") == 2
    assert [(ln.attempt, ln.text) for ln in service.logs_since(job) if ln.stream == "out"] == [
        (1, "attempt 1 says hello"),
        (2, "attempt 2 says hello"),
    ]


@pytest.mark.slow
def test_a_job_that_kills_its_worker_is_requeued_at_most_max_interruptions_times(
    service: OpsService, catalog: Path, worker_process: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    (catalog / "poison_handler.py").write_text(
        "import os\n\n"
        "def run(ctx):\n"
        "    ctx.log('about to take the worker down')\n"
        "    os._exit(1)\n"
    )
    write_template(
        catalog,
        "poison",
        "runner: python\nhandler: poison_handler:run\nisolate: false\non_interrupt: requeue\n",
    )
    write_template(catalog, "bystander", bash(f"while [ ! -e {gate} ]; do sleep 0.05; done"))
    bystander = service.submit(SubmitRequest("bystander")).id
    first = worker_process()
    wait_until(lambda: service.get(bystander).state == S.RUNNING, 20)
    poison = service.submit(SubmitRequest("poison")).id
    crashed = [first]
    assert first.wait(20) == 1  # the poison took its worker, and the bystander, down
    for _ in range(2):  # a supervisor restarts the worker; the poison is requeued, runs again
        crashed.append(worker_process())
        assert crashed[-1].wait(20) == 1
    survivor = worker_process()
    view = final(service, poison, timeout=20)
    assert view.state == S.FAILED
    assert view.attempts == 3
    assert view.error is not None
    assert "interrupted 3 times in a row" in view.error["message"]
    assert survivor.poll() is None  # the fourth worker lives: the poison is not run again
    # the crashed worker's record names what it was running; the bystander names the poison
    dead = next(w for w in service.workers(include_stopped=True) if f":{first.pid}:" in w.id)
    assert dead.state == "dead"
    assert dead.problem is not None and poison in dead.problem and bystander in dead.problem
    view = final(service, bystander)
    assert view.state == S.INTERRUPTED
    assert view.error is not None
    assert f":{first.pid}:" in view.error["message"] and poison in view.error["message"]


@pytest.mark.slow
def test_a_worker_holding_a_thread_it_cannot_stop_drains_and_replaces_itself(
    service: OpsService, catalog: Path, worker_process: Any, tmp_path: Path
) -> None:
    """A handler blocked in a system call ignores cancellation and cannot be interrupted."""
    stuck_in_a_system_call(catalog, tmp_path / "fifo")
    write_template(catalog, "hello", "command: [echo, hi]\n")
    stuck = service.submit(SubmitRequest("stuck")).id
    proc = worker_process()
    wait_until(lambda: service.get(stuck).state == S.TIMED_OUT, 30)
    first = next(w.id for w in service.workers(include_stopped=True) if f":{proc.pid}:" in w.id)

    def replaced() -> bool:
        rows = [w for w in service.workers(include_stopped=True) if f":{proc.pid}:" in w.id]
        return any(w.id != first and w.alive for w in rows)

    wait_until(replaced, 60)  # the same process, a fresh interpreter: a new worker row
    assert proc.poll() is None
    states = {w.id: w.state for w in service.workers(include_stopped=True)}
    assert states[first] == "stopped"
    view = service.get(stuck)
    assert view.error is not None and "abandoned" in view.error["message"]
    after = service.submit(SubmitRequest("hello")).id
    assert final(service, after, timeout=30).state == S.SUCCEEDED
