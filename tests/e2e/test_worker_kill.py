"""Workers that die with work in hand, on PostgreSQL, as real processes on short leases.

``kill -9`` of one worker process with 20 running jobs: a worker of the same machine sees
its pid gone, kills what is left of each job and settles it per ``on_interrupt``; a
machine that dies whole (worker and jobs) is noticed by another machine once its heartbeat
is stale. Either way each job is requeued or ``interrupted`` within the stale threshold
plus 5 s, no attempt meets a live process of an earlier one, and no process survives. The
worker that runs the schedules dying loses no fire and doubles none.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fleet_support import SHORT_LEASES, Fleet, fleet
from support import wait_until, write_template

from opsconsole.config import load_settings
from opsconsole.core.schedules import ScheduleRequest
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store.db import Database, jobs, schedule_fires
from opsconsole.engine.fire_times import fire_times
from opsconsole.engine.procs import find_marked, pid_alive

S = JobState
LEASE = float(SHORT_LEASES["OPSCONSOLE_LEASE"])
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc"),
]


@pytest.fixture
def pg_service(pg_url: str, home: Path, catalog: Path) -> Iterator[OpsService]:
    """A service on a migrated PostgreSQL store of this test's own."""
    db = Database(pg_url)
    db.ensure_schema()
    yield OpsService(
        load_settings(home=home, catalog=catalog, db=pg_url), db, fire_times=fire_times
    )
    db.dispose()


@pytest.fixture
def workers(pg_url: str, home: Path, catalog: Path, tmp_path: Path) -> Iterator[Fleet]:
    with fleet(pg_url, home, catalog, tmp_path / "logs") as f:
        yield f


class Runs:
    """The file each attempt appends ``<job> <attempt> <pid> <what>`` lines to."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self) -> list[tuple[str, int, int, str]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            job, attempt, pid, what = line.split()
            out.append((job, int(attempt), int(pid), what))
        return out

    def pids(self, attempt: int) -> list[int]:
        return [p for _, a, p, _ in self.rows() if a == attempt]

    def count(self, what: str) -> Counter[str]:
        return Counter(j for j, _, _, w in self.rows() if w == what)


def crash_templates(catalog: Path, runs: Runs) -> None:
    """``crash-mark`` and ``crash-requeue``: attempt 1 sleeps (with a child), later attempts
    end at once; each attempt first writes ``overlap`` if a process of an earlier attempt
    of its job is still alive."""
    script = f"""
echo "$OPSCONSOLE_JOB_ID $OPSCONSOLE_ATTEMPT $$ started" >> {runs.path}
for p in $(awk '$1 == "'"$OPSCONSOLE_JOB_ID"'" && $2 < '"$OPSCONSOLE_ATTEMPT"' {{print $3}}' \\
    {runs.path}); do
  state=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null)
  case "$state" in ''|Z|X) ;; *) echo "$OPSCONSOLE_JOB_ID $OPSCONSOLE_ATTEMPT $p overlap" \\
    >> {runs.path};; esac
done
if [ "$OPSCONSOLE_ATTEMPT" -gt 1 ]; then exit 0; fi
sleep 60 &
echo "$OPSCONSOLE_JOB_ID $OPSCONSOLE_ATTEMPT $! child" >> {runs.path}
wait
"""
    body = "".join(f"    {line}\n" for line in script.strip("\n").splitlines())
    for name, mode in (("crash-mark", "mark"), ("crash-requeue", "requeue")):
        write_template(
            catalog, name, f"on_interrupt: {mode}\ncommand:\n  - bash\n  - -c\n  - |\n{body}"
        )


def _twenty_running(svc: OpsService, catalog: Path, runs: Runs, f: Fleet, host: str) -> tuple:
    """Submit 10 + 10 jobs, run them all on one worker of ``host``; (worker, marks, requeues)."""
    crash_templates(catalog, runs)
    marks = [svc.submit(SubmitRequest("crash-mark")).id for _ in range(10)]
    requeues = [svc.submit(SubmitRequest("crash-requeue")).id for _ in range(10)]
    victim = f.start("victim", host=host, slots=20)
    wait_until(lambda: len(runs.pids(1)) == 40, timeout=60)  # 20 jobs, each with a child
    for job in marks + requeues:
        view = svc.get(job)
        assert view.state == S.RUNNING and f":{victim.proc.pid}:" in (view.worker or "")
    return victim, marks, requeues


def _settled(svc: OpsService, marks: list[str], requeues: list[str]) -> bool:
    done = all(svc.get(j).state == S.INTERRUPTED for j in marks)
    return done and all(svc.get(j).attempts == 2 for j in requeues)


def _check_outcome(svc: OpsService, runs: Runs, marks: list[str], requeues: list[str]) -> None:
    for job in requeues:
        view = wait_until(lambda j=job: (v := svc.get(j)).state == S.SUCCEEDED and v, 30)
        assert view.attempts == 2
        kinds = [e.kind for e in svc.get(job, with_events=True).events or ()]
        assert kinds == ["submitted", "started", "requeued", "started", "succeeded"]
    for job in marks:
        view = svc.get(job)
        assert (view.state, view.attempts) == (S.INTERRUPTED, 1)
        assert view.error is not None and "vanished" in view.error["message"]
    started = runs.count("started")
    assert {j: started[j] for j in marks} == dict.fromkeys(marks, 1)
    assert {j: started[j] for j in requeues} == dict.fromkeys(requeues, 2)
    assert runs.count("overlap") == Counter()  # no attempt met a live earlier one
    for job in marks + requeues:
        assert find_marked(f"{job}.1") == []


def test_kill_9_of_a_worker_with_20_running_jobs_its_machine_settles_them(
    pg_service: OpsService, catalog: Path, workers: Fleet, tmp_path: Path
) -> None:
    runs = Runs(tmp_path / "runs")
    victim, marks, requeues = _twenty_running(pg_service, catalog, runs, workers, "machine-1")
    peer = workers.start("peer", host="machine-1", slots=4)
    wait_until(peer.running, timeout=30)
    leftovers = runs.pids(1)

    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(timeout=10)
    killed_at = time.monotonic()
    assert all(pid_alive(p) for p in leftovers), "the jobs outlive their worker"
    wait_until(lambda: _settled(pg_service, marks, requeues), timeout=LEASE + 5)
    assert time.monotonic() - killed_at < LEASE + 5

    assert [p for p in leftovers if pid_alive(p)] == []  # no orphan survives
    _check_outcome(pg_service, runs, marks, requeues)
    dead = [
        w
        for w in pg_service.workers(include_stopped=True)
        if w.id.split(":")[1] == str(victim.proc.pid)
    ]
    assert [w.state for w in dead] == ["dead"]
    assert "vanished while running" in (dead[0].problem or "")


def test_a_machine_that_dies_whole_is_settled_by_another_once_its_heartbeat_is_stale(
    pg_service: OpsService, catalog: Path, workers: Fleet, tmp_path: Path
) -> None:
    runs = Runs(tmp_path / "runs")
    victim, marks, requeues = _twenty_running(pg_service, catalog, runs, workers, "machine-1")
    other = workers.start("other", host="machine-2", slots=4)
    wait_until(other.running, timeout=30)
    leftovers = runs.pids(1)

    # the machine dies: its worker and every process of its jobs at once
    os.kill(victim.proc.pid, signal.SIGKILL)
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    victim.proc.wait(timeout=10)
    killed_at = time.monotonic()
    wait_until(lambda: _settled(pg_service, marks, requeues), timeout=LEASE + 5)
    assert time.monotonic() - killed_at < LEASE + 5

    _check_outcome(pg_service, runs, marks, requeues)
    reapers = {svc_ev.actor for j in marks for svc_ev in _events(pg_service, j, "interrupted")}
    assert len(reapers) == 1 and reapers.pop().startswith("machine-2:")


def _events(svc: OpsService, job: str, kind: str) -> list:
    return [e for e in svc.get(job, with_events=True).events or () if e.kind == kind]


def test_the_worker_running_the_schedules_dies_and_no_fire_is_lost_or_doubled(
    pg_service: OpsService, catalog: Path, workers: Fleet
) -> None:
    write_template(catalog, "echo", "runner: shell\ncommand: [echo, hi]\n")
    pg_service.add_schedule(
        ScheduleRequest(name="tick", template="echo", every="1s", overlap="allow", catchup="all")
    )
    first = workers.start("first", host="machine-1", slots=2)
    wait_until(lambda: len(_fires(pg_service)[0]) >= 3, timeout=60)
    second = workers.start("second", host="machine-2", slots=2)
    wait_until(second.running, timeout=30)
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)
    after_kill = len(_fires(pg_service)[0])
    wait_until(lambda: len(_fires(pg_service)[0]) >= after_kill + 4, timeout=60)
    workers.stop_all()

    fires, made = _fires(pg_service)
    assert {f["status"] for f in fires} == {"fired"}, fires
    assert max(Counter(f["fire_at"] for f in fires).values()) == 1  # none doubled
    assert len(made) == len(fires)
    assert sorted(f["job_id"] for f in fires) == sorted(j["id"] for j in made)
    times = sorted(f["fire_at"] for f in fires)
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(times))  # none lost


def _fires(svc: OpsService) -> tuple[list[sa.RowMapping], list[sa.RowMapping]]:
    with svc.db.read() as conn:
        fires = list(conn.execute(sa.select(schedule_fires)).mappings())
        made = list(
            conn.execute(sa.select(jobs.c.id).where(jobs.c.schedule.is_not(None))).mappings()
        )
    return fires, made


def test_a_frozen_machine_that_comes_back_cannot_overwrite_its_successors_attempt(
    pg_service: OpsService, catalog: Path, workers: Fleet, tmp_path: Path
) -> None:
    """Attempt 1's worker is frozen past its lease on machine 1; machine 2 requeues the job
    and runs attempt 2. Attempt 1's process (not frozen) ends with success meanwhile, and
    when its worker thaws it tries to record that: the attempt number fences it out."""
    gate, release = tmp_path / "gate", tmp_path / "release"
    runs = Runs(tmp_path / "runs")
    script = f"""
echo "$OPSCONSOLE_JOB_ID $OPSCONSOLE_ATTEMPT $$ started" >> {runs.path}
echo "attempt $OPSCONSOLE_ATTEMPT says hello"
if [ "$OPSCONSOLE_ATTEMPT" -gt 1 ]; then
  while [ ! -e {gate} ]; do sleep 0.02; done
  echo "attempt $OPSCONSOLE_ATTEMPT done"
  exit 0
fi
while [ ! -e {release} ]; do sleep 0.02; done
echo "attempt 1 finished late"
exit 0
"""
    body = "".join(f"    {line}\n" for line in script.strip("\n").splitlines())
    write_template(
        catalog, "frozen", f"on_interrupt: requeue\ncommand:\n  - bash\n  - -c\n  - |\n{body}"
    )
    job = pg_service.submit(SubmitRequest("frozen")).id
    old = workers.start("old", host="machine-1", slots=1)
    wait_until(lambda: pg_service.get(job).state == S.RUNNING, timeout=60)
    wait_until(lambda: any(ln.stream == "out" for ln in pg_service.logs_since(job)), timeout=30)
    wait_until(old.running, timeout=30)

    os.kill(old.proc.pid, signal.SIGSTOP)  # alive but silent: only its heartbeat going stale tells
    try:
        new = workers.start("new", host="machine-2", slots=1)
        view = wait_until(
            lambda: (v := pg_service.get(job)).attempts == 2 and v.state == S.RUNNING and v,
            timeout=30,
        )
        successor = view.worker
        assert successor is not None and successor.startswith(f"machine-2:{new.proc.pid}:")
        release.touch()  # attempt 1 ends with success while its worker is frozen
        wait_until(lambda: len(runs.pids(1)) == 1 and not pid_alive(runs.pids(1)[0]), 10)
    finally:
        os.kill(old.proc.pid, signal.SIGCONT)

    seen: set[object] = set()

    def old_heartbeats() -> bool:
        rows = [
            w for w in pg_service.workers(include_stopped=True) if w.id.startswith("machine-1:")
        ]
        seen.update(w.heartbeat_at for w in rows)
        return len(seen) >= 3

    wait_until(old_heartbeats, 15)  # the old worker is back and has tried to record attempt 1
    view = pg_service.get(job)
    assert (view.state, view.attempts, view.worker) == (S.RUNNING, 2, successor)
    gate.touch()
    view = wait_until(lambda: (v := pg_service.get(job)).state == S.SUCCEEDED and v, 30)
    assert view.attempts == 2
    kinds = [e.kind for e in pg_service.get(job, with_events=True).events or ()]
    assert kinds == ["submitted", "started", "requeued", "started", "succeeded"]
    out = [(ln.attempt, ln.text) for ln in pg_service.logs_since(job) if ln.stream == "out"]
    assert (2, "attempt 2 done") in out
    assert (1, "attempt 1 finished late") not in out  # the frozen worker's writes were fenced
