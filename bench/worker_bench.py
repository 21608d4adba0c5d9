"""Benchmark of the worker's hot path (not a test): what the queue adds to a no-op job.

    .venv/bin/python bench/worker_bench.py            (a few minutes; --help for the knobs)
    .venv/bin/python bench/worker_bench.py --quick    (under a minute, SQLite only)

Workloads, each on SQLite and PostgreSQL (a private cluster, ``tests/pg_support.py``), with
the pool in this process (``WorkerPool``) and, for the drain, as an ``opsconsole worker``
process:

- ``drain``: ``--jobs`` no-op Python jobs (``isolate: false``) submitted first, then drained
  by 4 slots: jobs/s from the first claim to the last finish (the store's own times), and
  CPU ms per job of every process involved (this one or the worker's, plus the PostgreSQL
  server's backends, from /proc) over the drain;
- ``live``: the same jobs submitted one call each while the pool runs: jobs/s from the first
  submit to the last finish, CPU per job (the submit side included);
- ``sleep``: 200 jobs of ``time.sleep(0.05)`` on 4 slots: seconds from the first claim to the
  last finish (ideal 2.5);
- ``pickup``: an idle pool, one job every ~20 ms, submit's return to the handler's start
  (wall clock, ms), p50/p95/p99.

Results go to ``bench/results/worker.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "worker.json"
TICK = os.sysconf("SC_CLK_TCK")
HANDLERS = """\
import time


def noop(ctx):
    return None


def nap(ctx):
    time.sleep(0.05)


def stamp(ctx):
    return {"t": time.time()}
"""
TEMPLATES = {
    "noop": "runner: python\nhandler: bench_worker:noop\nisolate: false\n",
    "nap": "runner: python\nhandler: bench_worker:nap\nisolate: false\n",
    "stamp": "runner: python\nhandler: bench_worker:stamp\nisolate: false\n",
}
TARGETS = {
    ("live", "jobs/s"): ">= 2200 (SQLite)",
    ("drain", "CPU ms/job"): "< 3",
    ("live", "CPU ms/job"): "< 3",
    ("sleep", "s"): "<= 2.625",
    ("pickup p99", "ms"): "< 5",
}


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc (to the clock tick)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
    return out


def self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Store:
    """A fresh store per run: a SQLite file, or a database on the session's cluster."""

    def __init__(self, kind: str, cluster: Any) -> None:
        self.kind = kind
        self.cluster = cluster
        self.dir = Path(tempfile.mkdtemp(prefix="opsbench-"))
        self.home = self.dir / "home"
        self.catalog = self.dir / "catalog"
        (self.catalog / "templates").mkdir(parents=True)
        self.home.mkdir()
        (self.catalog / "bench_worker.py").write_text(HANDLERS)
        for name, body in TEMPLATES.items():
            (self.catalog / "templates" / f"{name}.yaml").write_text(f"name: {name}\n{body}")
        if kind == "sqlite":
            self.url = f"sqlite:///{self.home / 'opsconsole.db'}"
        else:
            self.url = cluster.create_database()

    def server_cpu(self) -> float:
        """CPU seconds of the PostgreSQL server's processes (0 on SQLite)."""
        if self.cluster is None:
            return 0.0
        pid = int((self.cluster.datadir / "postmaster.pid").read_text().split()[0])
        return proc_cpu(pid) + sum(proc_cpu(c) for c in children_of(pid))

    def settings(self) -> Any:
        from opsconsole.config import load_settings

        return load_settings(home=self.home, catalog=self.catalog, db=self.url)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "OPSCONSOLE_HOME": str(self.home),
            "OPSCONSOLE_CATALOG": str(self.catalog),
            "OPSCONSOLE_DB": self.url,
        }

    def close(self) -> None:
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.drop_database(self.url)
        shutil.rmtree(self.dir, ignore_errors=True)


def service_of(store: Store) -> Any:
    from opsconsole.runtime import open_service

    return open_service(store.settings())


def submit_many(service: Any, template: str, n: int) -> list[str]:
    from opsconsole.core.service import SubmitRequest

    req = SubmitRequest(template=template)
    return [service.submit(req).id for _ in range(n)]


def span(service: Any, ids: list[str], timeout: float) -> tuple[datetime, datetime]:
    """Wait until every job is final; the first start and the last finish (store times)."""
    import sqlalchemy as sa

    from opsconsole.core.store.db import jobs

    deadline = time.monotonic() + timeout
    done = sa.select(sa.func.count()).where(
        jobs.c.state == "succeeded", jobs.c.id.in_(sa.bindparam("ids", expanding=True))
    )
    bounds = sa.select(sa.func.min(jobs.c.started_at), sa.func.max(jobs.c.finished_at)).where(
        jobs.c.id.in_(sa.bindparam("ids", expanding=True))
    )
    while time.monotonic() < deadline:
        with service.db.read() as conn:
            if conn.execute(done, {"ids": ids}).scalar_one() == len(ids):
                first, last = conn.execute(bounds, {"ids": ids}).one()
                return first, last
        time.sleep(0.05)
    raise SystemExit(f"the jobs did not finish within {timeout:g}s")


@contextlib.contextmanager
def pool_in_process(store: Store, service: Any, slots: int) -> Iterator[Callable[[], float]]:
    from opsconsole.engine.pool import WorkerPool

    pool = WorkerPool(service, slots=slots, use_scheduler=False).start()
    try:
        yield lambda: 0.0  # its CPU is this process's
    finally:
        pool.stop(grace=1)


@contextlib.contextmanager
def pool_process(store: Store, _service: Any, slots: int) -> Iterator[Callable[[], float]]:
    exe = Path(sys.executable).with_name("opsconsole")
    proc = subprocess.Popen(
        [str(exe), "worker", "--workers", str(slots)],
        env=store.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_worker(_service)
        yield lambda: proc_cpu(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_worker(service: Any) -> None:
    from opsconsole.core.store import claim as claim_store

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if claim_store.list_workers(service.db):
            time.sleep(0.3)  # its listener and claimer are up once its row is
            return
        time.sleep(0.05)
    raise SystemExit("the worker process did not start")


POOLS = {"in-process": pool_in_process, "process": pool_process}


def drain(store: Store, mode: str, n: int, slots: int) -> dict[str, float]:
    service = service_of(store)
    ids = submit_many(service, "noop", n)
    cpu0, srv0 = self_cpu(), store.server_cpu()
    with POOLS[mode](store, service, slots) as worker_cpu:
        w0 = worker_cpu()
        first, last = span(service, ids, timeout=600)
        cpu = self_cpu() - cpu0 + worker_cpu() - w0 + store.server_cpu() - srv0
    service.db.dispose()
    took = (last - first).total_seconds()
    return {"jobs/s": n / took, "CPU ms/job": 1000 * cpu / n}


def live(store: Store, mode: str, n: int, slots: int) -> dict[str, float]:
    service = service_of(store)
    with POOLS[mode](store, service, slots) as worker_cpu:
        cpu0, srv0, w0 = self_cpu(), store.server_cpu(), worker_cpu()
        t0 = time.time()
        ids = submit_many(service, "noop", n)
        _first, last = span(service, ids, timeout=600)
        cpu = self_cpu() - cpu0 + worker_cpu() - w0 + store.server_cpu() - srv0
    service.db.dispose()
    took = last.timestamp() - t0
    return {"jobs/s": n / took, "CPU ms/job": 1000 * cpu / n}


def sleep(store: Store, mode: str, n: int, slots: int) -> dict[str, float]:
    service = service_of(store)
    ids = submit_many(service, "nap", n)
    with POOLS[mode](store, service, slots):
        first, last = span(service, ids, timeout=120)
    service.db.dispose()
    return {"s": (last - first).total_seconds()}


def pickup(store: Store, mode: str, n: int, slots: int) -> dict[str, float]:
    from opsconsole.core.service import SubmitRequest

    service = service_of(store)
    req = SubmitRequest(template="stamp")
    sent: dict[str, float] = {}
    with POOLS[mode](store, service, slots):
        time.sleep(0.5)
        for _ in range(n):
            job_id = service.submit(req).id
            sent[job_id] = time.time()
            time.sleep(0.02)
        span(service, list(sent), timeout=60)
    lat = sorted(1000 * (service.get(j).result["t"] - t) for j, t in sent.items())
    service.db.dispose()
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"pickup p50": q[49], "pickup p95": q[94], "pickup p99": q[98]}


WORKLOADS: dict[str, Callable[[Store, str, int, int], dict[str, float]]] = {
    "drain": drain,
    "live": live,
    "sleep": sleep,
    "pickup": pickup,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=3000, help="no-op jobs per drain/live run")
    ap.add_argument("--runs", type=int, default=3, help="runs per workload (median reported)")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--modes", default="in-process,process")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--quick", action="store_true", help="SQLite, in-process, small runs")
    args = ap.parse_args()
    if args.quick:
        args.jobs, args.runs, args.stores, args.modes = 500, 1, "sqlite", "in-process"
    sys.path.insert(0, str(REPO / "tests"))
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        clusters: dict[str, Any] = {"sqlite": None}
        if "postgresql" in args.stores:
            import pg_support

            why = pg_support.missing()
            if why:
                notes.append(f"PostgreSQL left out: {why}")
            else:
                clusters["postgresql"] = stack.enter_context(
                    contextlib.contextmanager(pg_support.start_cluster)()
                )
        for kind in args.stores.split(","):
            if kind not in clusters:
                continue
            for mode in args.modes.split(","):
                for workload in args.workloads.split(","):
                    n = {"sleep": 200, "pickup": 200}.get(workload, args.jobs)
                    if args.quick and workload == "pickup":
                        n = 100
                    samples: dict[str, list[float]] = {}
                    for _ in range(args.runs):
                        store = Store(kind, clusters[kind])
                        try:
                            for key, value in WORKLOADS[workload](
                                store, mode, n, args.slots
                            ).items():
                                samples.setdefault(key, []).append(value)
                        finally:
                            store.close()
                    for key, values in samples.items():
                        name, unit = (key, "ms") if workload == "pickup" else (workload, key)
                        rows.append(
                            {
                                "workload": f"{name} ({kind}, {mode})",
                                "subject": "opsconsole",
                                "value": round(statistics.median(values), 3),
                                "unit": unit,
                                "spread": [round(min(values), 3), round(max(values), 3)],
                                "runs": len(values),
                                "target": TARGETS.get((name, unit)),
                                "met": None,
                            }
                        )
                        print(
                            f"{rows[-1]['workload']:<40} {unit:<11} "
                            f"{rows[-1]['value']:>10.2f}  [{min(values):.2f}-{max(values):.2f}]",
                            flush=True,
                        )
    for row in rows:
        row["met"] = met(row)
    out = {
        "bench": "worker",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load": os.getloadavg(),
        },
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "notes": notes,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS}")


def met(row: dict[str, Any]) -> bool | None:
    target = row["target"]
    if not target:
        return None
    if "sqlite" not in row["workload"] and "(SQLite)" in target:
        return None
    op, number = target.split()[:2]
    value, bound = row["value"], float(number)
    return bool({"<": value < bound, "<=": value <= bound, ">=": value >= bound}[op])


if __name__ == "__main__":
    main()
