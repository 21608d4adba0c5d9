"""Where a pickup's milliseconds go: the pickup workload, with the worker's path timed.

``queue_bench.py``'s pickup row gives the latency from a submit's return to the handler's
start; a sampling profiler cannot say which part of that path a slow pickup spent its time
in (the worker is idle most of the run). This runs the same workload (idle, warm workers,
one no-op job every ~20 ms) against ``opsconsole worker --workers 4`` started with timing
hooks around the steps of the path, and prints each step's p50/p95/p99 and the breakdown of
the slowest pickups:

- ``wake``: the submit's return to the worker's wake-up (negative: the poke arrived first);
- ``react``: the wake-up to the claimer entering its claim;
- ``turn``: waiting for the write lock the claimer and the recorder share;
- ``claim``: the claim's write transaction;
- ``hand``: the claim's return to the slot thread starting the attempt;
- ``prepare``: the attempt's start to the handler's first line (template, context, work dir).

Every time is ``time.monotonic()``, one clock for the processes of the host. The hooks
wrap functions from outside and write one short line each: a few microseconds a step.

    bench/.venv/bin/python bench/pickup_trace.py [--pickups 200] [--pg ADMIN_DSN] [--spy F [--gil]]

``--spy F`` also samples the worker with py-spy (500 Hz, every thread) during the pickups and
writes collapsed stacks to ``F``; with ``--gil`` only the thread holding the GIL is sampled:
where the worker's interpreter time per job goes, which a waiting thread would hide.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))

import queue_bench as qb  # noqa: E402
import subjects as sj  # noqa: E402

STEPS = ("wake", "react", "turn", "claim", "hand", "prepare")

# -- inside the worker process ---------------------------------------------------------------


def _hooked_worker(trace: str, argv: list[str]) -> None:
    """Run ``opsconsole worker`` with the path's steps timed into ``trace``."""
    from opsconsole.cli.app import main
    from opsconsole.engine import pool as P

    fd = os.open(trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    lock = threading.Lock()

    def note(what: str, job: str, t: float) -> None:
        with lock:
            os.write(fd, f"{what} {job} {t:.6f}\n".encode())

    wake_all = P.WorkerPool.wake_all

    def hooked_wake(self: Any) -> None:
        note("wake", "-", time.monotonic())
        wake_all(self)

    claim_entry = P.WorkerPool._claim

    def hooked_claim(self: Any, now: Any, n: int) -> list[Any]:
        t0 = time.monotonic()
        rows = claim_entry(self, now, n)
        t1 = time.monotonic()
        for row in rows:
            note("c0", row["id"], t0)
            note("c1", row["id"], t1)
        return rows

    store = P.claim_store

    def timed(fn: Any) -> Any:
        def call(*a: Any, **k: Any) -> Any:
            t0 = time.monotonic()
            out = fn(*a, **k)
            t1 = time.monotonic()
            for row in out if isinstance(out, list) else [out] if out else []:
                note("x0", row["id"], t0)
                note("x1", row["id"], t1)
            return out

        return call

    execute = P.execute

    def hooked_execute(env: Any, run: Any) -> Any:
        note("ex", run.job_id, time.monotonic())
        return execute(env, run)

    P.WorkerPool.wake_all = hooked_wake  # type: ignore[method-assign]
    P.WorkerPool._claim = hooked_claim  # type: ignore[method-assign]
    store.claim = timed(store.claim)  # type: ignore[assignment]
    store.claim_many = timed(store.claim_many)  # type: ignore[assignment]
    P.execute = hooked_execute  # type: ignore[assignment]
    sys.argv = ["opsconsole", *argv]
    main()


# -- the submitting side -------------------------------------------------------------------


class Traced(sj.Opsconsole):
    """opsconsole's subject, its worker started through the hooks above."""

    trace: Path

    def worker_argv(self) -> list[str]:
        return [
            sys.executable,
            str(Path(__file__).resolve()),
            "--hooked-worker",
            str(self.trace),
            "worker",
            "--workers",
            str(self.slots),
        ]


def run(pickups: int, pg_admin: str | None, spy: Path | None, gil: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="pickup-trace-") as tmp:
        work = Path(tmp)
        dsn = sj.new_database(pg_admin) if pg_admin else None
        s = Traced(work, work / "marks", qb.SLOTS, {}, url=sj.sqlalchemy_url(dsn) if dsn else None)
        s.store = "postgresql" if dsn else "sqlite"
        s.trace = work / "trace"
        env = qb.Env(pg_admin, None, None, None, 120.0)
        try:
            s.prepare()
            qb.warm(s, env)
            sampler = None
            if spy is not None and s.proc is not None:
                sampler = qb.py_spy(s.proc.pid, spy, rate=500, fmt="raw", gil=gil)
            time.sleep(0.5)
            returned: dict[str, float] = {}
            for k in range(pickups):
                job = s.client.submit("noop", {"i": f"p{k}"})
                returned[job.id] = time.monotonic()
                time.sleep(0.02)
            qb.wait_marks(s.marks, pickups + 1, env.timeout, s.proc)
            if sampler is not None:
                sampler.send_signal(signal.SIGINT)
                sampler.wait(timeout=60)
            started = {m.tag: m.start for m in qb.read_marks(s.marks)}
            tags = {job_id: f"p{k}" for k, job_id in enumerate(returned)}
            report(s.trace, returned, {j: started[t] for j, t in tags.items()}, s.store)
        finally:
            s.stop()
            s.close()
            if dsn and pg_admin:
                sj.drop_database(pg_admin, dsn)


def report(trace: Path, returned: dict[str, float], started: dict[str, float], store: str) -> None:
    at: dict[str, dict[str, float]] = defaultdict(dict)
    wakes: list[float] = []
    for line in trace.read_text().splitlines():
        what, job, t = line.split()
        if what == "wake":
            wakes.append(float(t))
        else:
            at[job][what] = float(t)
    rows: list[tuple[float, dict[str, float]]] = []
    for job_id, ret in returned.items():
        t = at[job_id]
        c0 = t["c0"]
        woke = max((w for w in wakes if ret - 0.05 <= w <= c0), default=ret)
        steps = {
            "wake": (woke - ret) * 1000,
            "react": (c0 - max(woke, ret)) * 1000,
            "turn": (t["x0"] - c0) * 1000,
            "claim": (t["x1"] - t["x0"]) * 1000,
            "hand": (t["ex"] - t["c1"]) * 1000,
            "prepare": (started[job_id] - t["ex"]) * 1000,
        }
        rows.append((max(0.0, started[job_id] - ret) * 1000, steps))
    total = [r[0] for r in rows]
    print(f"\n{len(rows)} pickups on {store}, ms:")
    print(f"{'step':<10}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}")
    for name in ("total", *STEPS):
        vals = sorted(total if name == "total" else [r[1][name] for r in rows])
        qs = [qb.quantile(vals, q) for q in (0.5, 0.95, 0.99)]
        print(f"{name:<10}" + "".join(f"{v:8.2f}" for v in (*qs, max(vals))))
    print("\nthe slowest 5 pickups, ms by step:")
    print(f"{'total':>8}" + "".join(f"{n:>9}" for n in STEPS))
    for lat, steps in sorted(rows, key=lambda r: -r[0])[:5]:
        print(f"{lat:8.2f}" + "".join(f"{steps[n]:9.2f}" for n in STEPS))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--hooked-worker":
        _hooked_worker(sys.argv[2], sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pickups", type=int, default=200)
    ap.add_argument("--pg", help="an admin DSN: trace on PostgreSQL instead of SQLite")
    ap.add_argument("--spy", type=Path, help="also write py-spy's samples of the worker here")
    ap.add_argument("--gil", action="store_true", help="--spy samples the GIL's holder only")
    args = ap.parse_args()
    run(args.pickups, args.pg, args.spy, args.gil)


if __name__ == "__main__":
    main()
