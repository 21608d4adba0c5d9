"""The worker pool on real subprocesses: timeout, cancel, limits, order, retries, resize, drain."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import wait_until, write_template

from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import FINAL, JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import jobs as job_store
from opsconsole.core.views import JobView
from opsconsole.engine.pool import WorkerPool
from opsconsole.engine.procs import find_marked, pid_alive

S = JobState
pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")


def final(service: OpsService, job_id: str, timeout: float = 10.0) -> JobView:
    return wait_until(lambda: (v := service.get(job_id)).state in FINAL and v, timeout)


def in_state(service: OpsService, job_id: str, state: JobState, timeout: float = 10.0) -> JobView:
    return wait_until(lambda: (v := service.get(job_id)).state == state and v, timeout)


def read_ints(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except (FileNotFoundError, ValueError):
        return []


def bash(script: str) -> str:
    """A ``command:`` block running ``script`` with bash -c."""
    lines = "".join(f"    {line}\n" for line in script.strip("\n").splitlines())
    return f"command:\n  - bash\n  - -c\n  - |\n{lines}"


def event_kinds(service: OpsService, job_id: str) -> list[str]:
    return [e.kind for e in service.get(job_id, with_events=True).events or ()]


def assert_tree_gone(job_id: str, attempt: int, pids: list[int]) -> None:
    assert pids, "the job never recorded its pids"
    alive = [p for p in pids if pid_alive(p)]
    assert alive == [], f"still alive: {alive}"
    assert find_marked(f"{job_id}.{attempt}") == []


def wait_heartbeats(service: OpsService, pool: WorkerPool, n: int = 2) -> None:
    """Wait until the worker row has been heartbeated ``n`` more times."""
    seen: list[Any] = []

    def beat() -> bool:
        hb = next(w.heartbeat_at for w in service.workers() if w.id == pool.id)
        if not seen or seen[-1] != hb:
            seen.append(hb)
        return len(seen) > n

    wait_until(beat, 5)


def bounded(fn: Callable[[], Any], timeout: float) -> Any:
    """Call a blocking ``fn`` on a thread; fail the test instead of hanging."""
    box: list[Any] = []
    t = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{fn} did not return within {timeout}s"
    return box[0]


# -- timeout and cancel stop the whole tree ----------------------------------------------------


def test_timeout_kills_a_tree_that_ignores_term(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    write_template(
        catalog,
        "stubborn",
        "timeout: 1s\n"
        + bash(
            f"""
trap '' TERM
echo $$ > {pids}
sleep 30 &
echo $! >> {pids}
wait
"""
        ),
    )
    job = service.submit(SubmitRequest("stubborn"))
    start_pool(1)
    wait_until(lambda: len(read_ints(pids)) == 2)
    view = final(service, job.id, timeout=6)
    assert view.state == S.TIMED_OUT
    assert view.error is not None and view.error["kind"] == "timed_out"
    grace = service.settings.kill_grace
    assert view.duration_s is not None and 1.0 <= view.duration_s < 1.0 + grace + 2
    assert_tree_gone(job.id, 1, read_ints(pids))


def slow_job(catalog: Path, pids: Path, **extra: str) -> None:
    head = "".join(f"{k}: {v}\n" for k, v in extra.items())
    write_template(
        catalog,
        "slow",
        head
        + bash(
            f"""
echo $$ >> {pids}
sleep 30 &
echo $! >> {pids}
wait
"""
        ),
    )


def test_cancel_of_a_running_job_arrives_through_the_wake_up_channel(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    slow_job(catalog, pids)
    job = service.submit(SubmitRequest("slow"))
    start_pool(1, use_scheduler=False)  # no heartbeat timer: only the poke can deliver it
    wait_until(lambda: len(read_ints(pids)) == 2)
    service.cancel(job.id, reason="wrong target")
    view = final(service, job.id, timeout=15)  # no heartbeats run: only the poke can stop it
    assert view.state == S.CANCELLED
    assert view.error is not None and view.error["message"] == "wrong target"
    assert_tree_gone(job.id, 1, read_ints(pids))


def test_cancel_is_read_by_the_heartbeat_when_no_poke_arrives(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    slow_job(catalog, pids)
    job = service.submit(SubmitRequest("slow"))
    pool = start_pool(1, use_scheduler=False)
    wait_until(lambda: len(read_ints(pids)) == 2)
    # straight to the store: no wake-up is sent, as when the operator sits on another host
    job_store.request_cancel(service.db, job.id, reason="", actor="op", now=service.now())
    assert service.get(job.id).state == S.RUNNING
    pool.tick()
    assert final(service, job.id, timeout=5).state == S.CANCELLED
    assert_tree_gone(job.id, 1, read_ints(pids))


def test_cancel_of_a_queued_job_is_immediate(service: OpsService, catalog: Path) -> None:
    write_template(catalog, "noop", "command: ['true']\n")
    job = service.submit(SubmitRequest("noop"))
    view = service.cancel(job.id)
    assert view.state == S.CANCELLED
    assert event_kinds(service, job.id) == ["submitted", "cancelled"]


# -- what the claim picks ----------------------------------------------------------------------


def test_concurrency_key_limit_one_never_overlaps(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path
) -> None:
    log = tmp_path / "intervals"
    write_template(
        catalog,
        "migrate",
        "concurrency: {key: 'db-{{ db }}', limit: 1}\n"
        "params: {db: {type: string, required: true}}\n"
        + bash(
            f"""
echo "start $OPSCONSOLE_JOB_ID $0 $(date +%s.%N)" >> {log}
sleep 0.3
echo "end $OPSCONSOLE_JOB_ID $0 $(date +%s.%N)" >> {log}
"""
        )
        + "  - '{{ db }}'\n",  # $0 of the script
    )
    main = [service.submit(SubmitRequest("migrate", {"db": "main"})).id for _ in range(4)]
    other = service.submit(SubmitRequest("migrate", {"db": "other"})).id
    start_pool(4)
    for job_id in [*main, other]:
        assert final(service, job_id).state == S.SUCCEEDED

    spans: dict[str, dict[str, float]] = {}
    keys: dict[str, str] = {}
    for line in log.read_text().splitlines():
        what, job_id, key, ts = line.split()
        spans.setdefault(job_id, {})[what] = float(ts)
        keys[job_id] = key
    assert sorted(spans) == sorted([*main, other])
    ordered = sorted((s["start"], s["end"]) for j, s in spans.items() if keys[j] == "main")
    for (_, end), (next_start, _) in itertools.pairwise(ordered):
        assert end <= next_start, f"two 'main' jobs overlapped: {ordered}"
    # another key is not held back: it ran alongside the first 'main' job
    o_start, o_end = spans[other]["start"], spans[other]["end"]
    assert any(s < o_end and o_start < e for s, e in ordered)


def test_one_slot_runs_by_priority_then_fifo(
    service: OpsService, catalog: Path, start_pool: Any
) -> None:
    write_template(catalog, "noop", "command: ['true']\n")
    submitted = [
        ("low-1", "low"),
        ("normal-1", None),
        ("high-1", "high"),
        ("normal-2", "normal"),
        ("critical-1", "critical"),
        ("low-2", "low"),
        ("high-2", 10),
    ]
    ids = {service.submit(SubmitRequest("noop", priority=p)).id: name for name, p in submitted}
    start_pool(1)
    views = [final(service, job_id) for job_id in ids]
    assert all(v.state == S.SUCCEEDED for v in views)
    ran = [ids[v.id] for v in sorted(views, key=lambda v: (v.started_at, v.id))]
    assert ran == ["critical-1", "high-1", "high-2", "normal-1", "normal-2", "low-1", "low-2"]


def test_free_slots_are_filled_by_one_claim(
    service: OpsService, catalog: Path, start_pool: Any
) -> None:
    """A pool with four free slots and four ready jobs claims them in one transaction: one
    time for all four starts."""
    write_template(catalog, "noop", "command: ['true']\n")
    ids = [service.submit(SubmitRequest("noop")).id for _ in range(4)]
    start_pool(4)
    views = {job_id: final(service, job_id) for job_id in ids}
    assert all(v.state == S.SUCCEEDED for v in views.values())
    assert len({v.started_at for v in views.values()}) == 1
    assert len({v.worker for v in views.values()}) == 1


def test_tick_reaps_jobs_whose_lease_ran_out(
    clocked: OpsService, clock: SettableClock, catalog: Path
) -> None:
    """Time as a parameter: nothing sleeps until a lease expires, the test moves the clock."""
    write_template(catalog, "resumable", "on_interrupt: requeue\ncommand: ['true']\n")
    write_template(catalog, "fragile", "command: ['true']\n")
    resumable = clocked.submit(SubmitRequest("resumable")).id
    fragile = clocked.submit(SubmitRequest("fragile")).id
    lease = clocked.settings.lease
    for _ in range(2):  # a worker on another host takes both, then is never heard of again
        assert claim_store.claim(clocked.db, "elsewhere:4242:dead", clock.now(), lease)
    pool = WorkerPool(clocked, slots=1, use_scheduler=False)
    try:
        pool.start()
        clock.advance(lease - 0.5)
        pool.tick(clock.now())
        assert {clocked.get(j).state for j in (resumable, fragile)} == {S.RUNNING}
        clock.advance(1)
        pool.tick(clock.now())
        view = clocked.get(fragile)
        assert view.state == S.INTERRUPTED
        assert view.error is not None and "elsewhere:4242:dead" in view.error["message"]
        view = final(clocked, resumable)
        assert (view.state, view.attempts, view.worker) == (S.SUCCEEDED, 2, pool.id)
    finally:
        pool.stop(grace=0.5)


def test_reaper_honours_a_cancel_asked_of_a_vanished_worker(
    clocked: OpsService, clock: SettableClock, catalog: Path
) -> None:
    write_template(catalog, "resumable", "on_interrupt: requeue\ncommand: ['true']\n")
    job = clocked.submit(SubmitRequest("resumable")).id
    assert claim_store.claim(clocked.db, "elsewhere:4242:dead", clock.now(), 3.0)
    clocked.cancel(job, reason="do not run this")  # its worker never reads it
    pool = WorkerPool(clocked, slots=1, use_scheduler=False)
    try:
        pool.start()
        clock.advance(10)
        pool.tick(clock.now())
        view = clocked.get(job)
        assert view.state == S.CANCELLED
        assert view.attempts == 1
        assert view.error is not None and "do not run this" in view.error["message"]
    finally:
        pool.stop(grace=0.5)


def test_heartbeat_stops_a_run_the_store_gave_away_without_writing(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    write_template(
        catalog,
        "taken",
        bash(
            f"""
if [ "$OPSCONSOLE_ATTEMPT" -gt 1 ]; then exit 0; fi
echo $$ >> {pids}
sleep 30 &
echo $! >> {pids}
wait
"""
        ),
    )
    job = service.submit(SubmitRequest("taken")).id
    pool = start_pool(1, use_scheduler=False)
    wait_until(lambda: len(read_ints(pids)) == 2)
    # what another host's reaper does when it believes this worker is gone
    job_store.finish(
        service.db, job, 1, S.QUEUED, service.now(), values={"run_at": service.now()},
        kind="requeued", actor="elsewhere:1:reaper",
    )  # fmt: skip
    pool.tick()
    view = final(service, job)
    assert (view.state, view.attempts) == (S.SUCCEEDED, 2)
    assert_tree_gone(job, 1, read_ints(pids))
    kinds = event_kinds(service, job)
    assert kinds == ["submitted", "started", "requeued", "started", "succeeded"]


# -- retries and --once ------------------------------------------------------------------------


def test_failing_job_is_retried_then_fails(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path
) -> None:
    log = tmp_path / "attempts"
    write_template(
        catalog,
        "flaky",
        "retries: 2\nbackoff: 0.1s\n" + bash(f"echo $OPSCONSOLE_ATTEMPT >> {log}\nexit 1"),
    )
    job = service.submit(SubmitRequest("flaky"))
    start_pool(1)
    view = final(service, job.id, timeout=10)
    assert view.state == S.FAILED
    assert view.attempts == 3
    assert view.exit_code == 1
    assert read_ints(log) == [1, 2, 3]
    kinds = event_kinds(service, job.id)
    assert kinds.count("retried") == 2
    assert kinds.count("started") == 3
    assert kinds[-1] == "failed"


def test_run_once_runs_every_ready_job_and_reports_success(
    service: OpsService, catalog: Path
) -> None:
    write_template(catalog, "ok", "command: [bash, -c, 'sleep 0.1']\n")
    ids = [service.submit(SubmitRequest("ok")).id for _ in range(4)]
    later = service.submit(SubmitRequest("ok", run_in="1h")).id
    pool = WorkerPool(service, slots=2, once=True).start()
    try:
        assert bounded(pool.run_once, 15) is True
    finally:
        pool.stop(grace=0.5)
    assert [service.get(i).state for i in ids] == [S.SUCCEEDED] * 4
    assert service.get(later).state == S.SCHEDULED  # not ready: left for a later run


def test_run_once_reports_a_failure(service: OpsService, catalog: Path) -> None:
    write_template(catalog, "ok", "command: ['true']\n")
    write_template(catalog, "bad", "command: ['false']\n")
    ok = [service.submit(SubmitRequest("ok")).id for _ in range(3)]
    bad = service.submit(SubmitRequest("bad")).id
    pool = WorkerPool(service, slots=2, once=True).start()
    try:
        assert bounded(pool.run_once, 15) is False
    finally:
        pool.stop(grace=0.5)
    assert [service.get(i).state for i in ok] == [S.SUCCEEDED] * 3
    assert service.get(bad).state == S.FAILED


# -- resize -------------------------------------------------------------------------------------


def gate_job(catalog: Path) -> None:
    """A job that runs until its ``gate`` file exists."""
    write_template(
        catalog,
        "gated",
        "params: {gate: {type: string, required: true}}\n"
        + bash('while [ ! -e "$0" ]; do sleep 0.02; done')
        + "  - '{{ gate }}'\n",
    )


def gated(service: OpsService, gate: Path, n: int) -> list[str]:
    return [service.submit(SubmitRequest("gated", {"gate": str(gate)})).id for _ in range(n)]


def test_resize_reaches_a_running_worker(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path
) -> None:
    gate1, gate2 = tmp_path / "gate1", tmp_path / "gate2"
    gate_job(catalog)
    pool = start_pool(1)
    service.resize_worker(pool.id, 3)
    wait_until(lambda: pool.slots == 3, 3)
    first = gated(service, gate1, 3)
    wait_until(lambda: all(service.get(j).state == S.RUNNING for j in first), 5)
    wait_until(lambda: pool.busy() == 3, 2)  # a slot shows busy just after its claim commits

    service.resize_worker(pool.id, 1)
    wait_until(lambda: pool.slots == 1, 3)
    second = gated(service, gate2, 2)
    gate1.touch()  # the three running jobs end; two surplus slots must leave, not claim
    for j in first:
        assert final(service, j).state == S.SUCCEEDED
    wait_until(lambda: sum(service.get(j).state == S.RUNNING for j in second) == 1, 5)
    wait_heartbeats(service, pool, 2)
    assert sorted(service.get(j).state for j in second) == [S.QUEUED, S.RUNNING]
    worker = next(w for w in service.workers() if w.id == pool.id)
    assert (worker.slots, worker.busy) == (1, 1)
    gate2.touch()
    for j in second:
        assert final(service, j).state == S.SUCCEEDED


def test_local_resize_is_not_undone_by_the_next_heartbeat(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate_job(catalog)
    pool = start_pool(1)
    pool.resize(2)
    wait_heartbeats(service, pool, 2)
    assert pool.slots == 2
    jobs = gated(service, gate, 2)
    wait_until(lambda: all(service.get(j).state == S.RUNNING for j in jobs), 5)
    gate.touch()
    for j in jobs:
        assert final(service, j).state == S.SUCCEEDED


# -- drain --------------------------------------------------------------------------------------


def test_drain_lets_short_jobs_finish_and_stops_long_ones(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    write_template(catalog, "short", "command: [bash, -c, 'sleep 0.3']\n")
    for name, on_interrupt in (("long-mark", "mark"), ("long-requeue", "requeue")):
        write_template(
            catalog,
            name,
            f"on_interrupt: {on_interrupt}\n"
            + bash(f"echo $$ >> {pids}\nsleep 30 &\necho $! >> {pids}\nwait"),
        )
    short = service.submit(SubmitRequest("short")).id
    mark = service.submit(SubmitRequest("long-mark")).id
    requeue = service.submit(SubmitRequest("long-requeue")).id
    pool = start_pool(3)
    wait_until(lambda: len(read_ints(pids)) == 4, 5)
    assert service.get(short).state == S.RUNNING
    bounded(lambda: pool.drain(grace=1.5), 10)

    assert service.get(short).state == S.SUCCEEDED
    view = service.get(mark)
    assert view.state == S.INTERRUPTED
    assert view.error is not None and view.error["kind"] == "interrupted"
    view = service.get(requeue)
    assert view.state == S.QUEUED and view.attempts == 1
    assert "requeued" in event_kinds(service, requeue)
    assert [p for p in read_ints(pids) if pid_alive(p)] == []
    assert find_marked(f"{mark}.1") == find_marked(f"{requeue}.1") == []
    assert next(w for w in service.workers(include_stopped=True) if w.id == pool.id).state == (
        "stopped"
    )
