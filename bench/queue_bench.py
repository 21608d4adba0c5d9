"""Queue benchmark (not a test): opsconsole against its peers, every subject in ONE run.

    bench/.venv/bin/python bench/queue_bench.py            (bench/run.sh starts what it needs)
    bench/.venv/bin/python bench/queue_bench.py --quick    (a smoke run, under a minute or two)

Subjects, each with 4 worker slots in a worker process of its own, jobs enqueued from this
process one call each:

- opsconsole on SQLite and on PostgreSQL: ``opsconsole worker --workers 4``, a Python handler
  template with ``isolate: false``; submitted through ``opsconsole.connect()``;
- Huey with SqliteHuey (results off), ``huey_consumer -w 4 -k thread``;
- Procrastinate on the same PostgreSQL cluster, ``worker --concurrency 4``;
- Celery with a Redis broker, no result backend, ``--pool threads --concurrency 4``;
- the raw limits: plain ``sqlite3`` and plain ``psycopg`` doing insert, claim and finish as
  three transactions, a claim loop of 4 threads in another process.

Workloads (each on a fresh store):

- ``end-to-end``: workers live and warm; enqueue N no-op jobs one call each; N / (first
  submit -> last job end). Also the enqueue rate alone and the CPU per job of every process
  involved (this process while it submits, the worker process tree, and the store's server
  process tree when it has one: PostgreSQL, Redis);
- ``backlog drain``: N jobs queued, then the worker starts; (N - 1) / (first job start ->
  last job end), so no subject pays for its start-up;
- ``pickup``: idle, warm workers; one job every ~20 ms, ``--pickups`` times; submit returned
  -> handler started, p50/p95/p99 (``time.monotonic``, one clock across processes; a job
  that started before its submit call returned counts as 0);
- ``sleep``: 200 jobs of 50 ms queued, then 4 slots run them; first start -> last end
  against the ideal 2.5 s.

PostgreSQL subjects need ``--pg`` (a libpq DSN of a role that may create databases; env
``BENCH_PG``); Celery needs ``--redis`` (env ``BENCH_REDIS``). A subject whose service is
missing is left out, and the notes say so. Results: ``bench/results/queue.json`` in the
shape of every bench here, and a table on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import describe

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench" / "peers"))

import subjects as sj  # noqa: E402

RESULTS = REPO / "bench" / "results" / "queue.json"
TICK = os.sysconf("SC_CLK_TCK")
SLOTS = 4
NAP = 0.05


def sleep_label(count: int) -> str:
    return f"{count} x 50 ms sleep jobs on 4 slots, s (ideal {count * NAP / SLOTS:.3g})"


# -- CPU of process trees ----------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def tree_cpu(pid: int | None) -> float:
    """CPU seconds of ``pid`` and its live descendants, with the children each has reaped."""
    if pid is None:
        return 0.0
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        f = _stat(p)
        if f is None:
            continue
        total += sum(int(x) for x in f[11:15]) / TICK  # utime stime cutime cstime
        todo += _children(p)
    return total


def self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# -- marks ---------------------------------------------------------------------------------


@dataclass
class Mark:
    tag: str
    start: float
    end: float


def read_marks(path: Path) -> list[Mark]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append(Mark(parts[0], float(parts[1]), float(parts[2])))
    return out


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


class Stuck(Exception):
    """A subject did not finish its jobs in time (its row gets no value; the notes say why)."""


def wait_marks(path: Path, count: int, timeout: float, proc: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while count_lines(path) < count:
        if proc is not None and proc.poll() is not None:
            raise Stuck(f"worker exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise Stuck(f"{count_lines(path)} of {count} jobs done after {timeout:.0f} s")
        time.sleep(0.005)


# -- workloads -----------------------------------------------------------------------------


@dataclass
class Env:
    """What the subjects share in one run."""

    pg_admin: str | None
    redis_url: str | None
    pg_pid: int | None
    redis_pid: int | None
    timeout: float


@contextlib.contextmanager
def subject(kind: type[sj.Subject], env: Env) -> Iterator[sj.Subject]:
    """A fresh store (a temp dir, a new PostgreSQL database, a flushed Redis) for one run."""
    with tempfile.TemporaryDirectory(prefix="qbench-") as tmp:
        work = Path(tmp)
        marks = work / "marks"
        dsn = None
        args: tuple[Any, ...] = (work, marks, SLOTS, {})
        if kind.store == "postgresql":
            assert env.pg_admin is not None
            dsn = sj.new_database(env.pg_admin)
        if kind is sj.OpsPostgres:
            s: sj.Subject = sj.OpsPostgres(*args, url=sj.sqlalchemy_url(dsn or ""))
        elif kind in (sj.Procrastinate, sj.RawPsycopg):
            s = kind(*args, dsn=dsn)  # type: ignore[call-arg]
        elif kind is sj.Celery:
            s = sj.Celery(*args, redis_url=env.redis_url or "")
        else:
            s = kind(*args)
        try:
            s.prepare()
            yield s
        finally:
            s.stop()
            s.close()
            if dsn is not None and env.pg_admin is not None:
                sj.drop_database(env.pg_admin, dsn)


def server_pid(s: sj.Subject, env: Env) -> int | None:
    return {"postgresql": env.pg_pid, "redis": env.redis_pid}.get(s.store)


def warm(s: sj.Subject, env: Env) -> None:
    """Start the worker and wait for one job through it: start-up is not what is measured."""
    proc = s.start()
    s.submit("noop", "warm")
    wait_marks(s.marks, 1, env.timeout, proc)


def py_spy(
    pid: int, output: Path, *, rate: int, fmt: str, gil: bool = False
) -> subprocess.Popen[bytes]:
    """py-spy sampling every thread of ``pid`` (only the GIL's holder with ``gil``) into
    ``output`` until it gets SIGINT."""
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate),
            *(["--gil"] if gil else []),
            "--format",
            fmt,
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def profiled(s: sj.Subject, out: Path | None) -> Iterator[Callable[[], None]]:
    """With ``--profile``: py-spy samples opsconsole's worker process (every thread) and
    pyinstrument this process's submit loop; the yielded function ends the submit part.

    Profiling costs CPU, so a profiled run's numbers are not the table's (see ``run``).
    """
    if out is None or not isinstance(s, sj.Opsconsole) or s.proc is None:
        yield lambda: None
        return
    from pyinstrument import Profiler

    out.mkdir(parents=True, exist_ok=True)
    stem = f"{s.store}"
    spy = py_spy(s.proc.pid, out / f"worker-{stem}.speedscope.json", rate=200, fmt="speedscope")
    prof = Profiler(interval=0.0005)
    prof.start()
    stopped = False

    def end_submits() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            prof.stop()
            (out / f"submit-{stem}.txt").write_text(prof.output_text(unicode=True, color=False))
            (out / f"submit-{stem}.html").write_text(prof.output_html())

    try:
        yield end_submits
    finally:
        end_submits()
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def end_to_end(
    kind: type[sj.Subject], env: Env, n: int, profile: Path | None = None
) -> dict[str, float]:
    with subject(kind, env) as s:
        warm(s, env)
        srv = server_pid(s, env)
        assert s.proc is not None
        with profiled(s, profile) as end_submits:
            cpu0 = tree_cpu(s.proc.pid) + tree_cpu(srv)
            mine0 = self_cpu()
            t0 = time.monotonic()
            for i in range(n):
                s.submit("noop", str(i))
            t_sub = time.monotonic()
            mine = self_cpu() - mine0
            end_submits()
            wait_marks(s.marks, n + 1, env.timeout, s.proc)
            cpu = tree_cpu(s.proc.pid) + tree_cpu(srv) - cpu0 + mine
        last = max(m.end for m in read_marks(s.marks))
        return {
            "e2e": n / (last - t0),
            "enqueue": n / (t_sub - t0),
            "cpu": cpu * 1000 / n,
        }


def drain(kind: type[sj.Subject], env: Env, n: int) -> dict[str, float]:
    with subject(kind, env) as s:
        for i in range(n):
            s.submit("noop", str(i))
        proc = s.start()
        wait_marks(s.marks, n, env.timeout, proc)
        marks = read_marks(s.marks)
        return {"drain": (n - 1) / (max(m.end for m in marks) - min(m.start for m in marks))}


def pickup(kind: type[sj.Subject], env: Env, count: int) -> dict[str, float]:
    with subject(kind, env) as s:
        warm(s, env)
        time.sleep(0.5)  # idle: the workers are waiting, not busy
        returned: dict[str, float] = {}
        for k in range(count):
            tag = f"p{k}"
            s.submit("noop", tag)
            returned[tag] = time.monotonic()
            time.sleep(0.02)
        wait_marks(s.marks, count + 1, env.timeout, s.proc)
        lat = sorted(
            max(0.0, m.start - returned[m.tag]) * 1000
            for m in read_marks(s.marks)
            if m.tag in returned
        )
        return {f"p{q}": quantile(lat, q / 100) for q in (50, 95, 99)}


def sleep_jobs(kind: type[sj.Subject], env: Env, count: int) -> dict[str, float]:
    with subject(kind, env) as s:
        for k in range(count):
            s.submit("nap", f"s{k}")
        proc = s.start()
        wait_marks(s.marks, count, env.timeout, proc)
        marks = read_marks(s.marks)
        return {"sleep": max(m.end for m in marks) - min(m.start for m in marks)}


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile of sorted ``values``."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(q * len(values) + 0.5) - 1))]


# -- the run -------------------------------------------------------------------------------

ALL: list[type[sj.Subject]] = [
    sj.OpsSqlite,
    sj.OpsPostgres,
    sj.Huey,
    sj.Procrastinate,
    sj.Celery,
    sj.RawSqlite,
    sj.RawPsycopg,
]

# (workload, metric key, unit, better) for the table; values come from the workload functions
ROWS = [
    ("end-to-end jobs/s, workers live", "e2e", "jobs/s"),
    ("enqueue jobs/s, one call each", "enqueue", "jobs/s"),
    ("backlog drain jobs/s", "drain", "jobs/s"),
    ("pickup p50 ms, submit -> start", "p50", "ms"),
    ("pickup p95 ms, submit -> start", "p95", "ms"),
    ("pickup p99 ms, submit -> start", "p99", "ms"),
    (sleep_label(200), "sleep", "s"),  # relabelled by run() for another count
    ("CPU ms per no-op job (all processes)", "cpu", "ms"),
]


def available(env: Env, only: list[str] | None) -> tuple[list[type[sj.Subject]], list[str]]:
    notes, out = [], []
    for kind in ALL:
        if only and not any(o.lower() in kind.name.lower() for o in only):
            continue
        if kind.store == "postgresql" and not env.pg_admin:
            notes.append(f"{kind.name}: left out, no PostgreSQL (--pg / BENCH_PG)")
            continue
        if kind.store == "redis" and not env.redis_url:
            notes.append(f"{kind.name}: left out, no Redis (--redis / BENCH_REDIS)")
            continue
        missing = {"Huey": "huey", "Procrastinate": "procrastinate", "Celery": "celery"}
        for word, dist in missing.items():
            if kind.name.startswith(word) and not has_dist(dist):
                notes.append(f"{kind.name}: left out, {dist} is not installed")
                break
        else:
            out.append(kind)
    return out, notes


def has_dist(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def machine(env: Env) -> dict[str, Any]:
    info = describe()
    for dist in ("opsconsole", "sqlalchemy", "huey", "procrastinate", "celery", "psycopg"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info[dist] = importlib.metadata.version(dist)
    if env.pg_admin:
        with contextlib.suppress(Exception):
            import psycopg

            with psycopg.connect(env.pg_admin) as c:
                row = c.execute("SHOW server_version").fetchone()
                info["postgresql"] = row[0] if row else "?"
    if env.redis_url:
        with contextlib.suppress(Exception):
            import redis

            info["redis"] = redis.Redis.from_url(env.redis_url).info("server")["redis_version"]
    return info


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = Env(
        pg_admin=args.pg or None,
        redis_url=args.redis or None,
        pg_pid=args.pg_pid,
        redis_pid=args.redis_pid,
        timeout=args.timeout,
    )
    kinds, notes = available(env, args.only)
    n, pickups, naps = args.n, args.pickups, args.naps
    if args.quick:
        n, pickups, naps = min(n, 100), min(pickups, 20), min(naps, 40)
    ROWS[:] = [(sleep_label(naps), k, u) if k == "sleep" else (w, k, u) for w, k, u in ROWS]
    workloads: list[tuple[str, Callable[[type[sj.Subject]], dict[str, float]], bool]] = [
        ("end-to-end", lambda k: end_to_end(k, env, n), True),
        ("drain", lambda k: drain(k, env, n), True),
        ("pickup", lambda k: pickup(k, env, pickups), False),
        ("sleep", lambda k: sleep_jobs(k, env, naps), False),
    ]
    if args.profile is not None:
        for kind in kinds:
            if issubclass(kind, sj.Opsconsole):
                print(f"profiling end-to-end {kind.name} -> {args.profile}", flush=True)
                end_to_end(kind, env, n, args.profile)
        notes.append(
            f"profiles of opsconsole's end-to-end run in {args.profile}: worker-STORE."
            "speedscope.json (py-spy, every thread of the worker; open in speedscope.app) and "
            "submit-STORE.txt/.html (pyinstrument, the submit loop); their runs are not in "
            "the table"
        )
    samples: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.repeat):
        for wname, fn, with_raw in workloads:
            for kind in kinds:
                if kind.raw and not with_raw:
                    continue
                label = f"[{rep + 1}/{args.repeat}] {wname:<10} {kind.name:<22}"
                print(label, end=" ", flush=True)
                started = time.monotonic()
                try:
                    got = fn(kind)
                except Stuck as exc:
                    notes.append(f"{kind.name} {wname} (run {rep + 1}): {exc}")
                    print(f"FAILED: {exc}", flush=True)
                    continue
                took = time.monotonic() - started
                print(
                    "  ".join(f"{k}={v:.4g}" for k, v in got.items()) + f"  ({took:.0f} s)",
                    flush=True,
                )
                for key, value in got.items():
                    samples.setdefault((key, kind.name), []).append(value)
    rows = []
    for workload, key, unit in ROWS:
        for kind in kinds:
            vals = samples.get((key, kind.name))
            if not vals:
                continue
            rows.append(
                {
                    "workload": workload,
                    "subject": kind.name,
                    "value": round(statistics.median(vals), 3),
                    "unit": unit,
                    "spread": [round(min(vals), 3), round(max(vals), 3)],
                    "runs": len(vals),
                    "target": None,
                    "met": None,
                }
            )
    judge(rows, naps * NAP / SLOTS)
    notes += [
        f"N={n} no-op jobs for end-to-end and drain; {pickups} pickups; {naps} sleep jobs; "
        f"medians of {args.repeat} run(s), spread = [min, max]",
        "4 slots each: opsconsole `worker --workers 4` (threads, Python handler isolate: false); "
        "Huey 4 threads; Procrastinate concurrency 4 (asyncio, sync task in its thread pool); "
        "Celery --pool threads --concurrency 4 (no result backend); raw limits: 4 threads",
        "CPU per job: this process while it submits + the worker process tree + the store's "
        "server process tree (PostgreSQL backends, Redis) during the end-to-end run",
        "pickup: a job that started before its submit call returned counts as 0 ms",
    ]
    return {
        "bench": "queue",
        "machine": machine(env),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "notes": notes,
    }


def value(rows: list[dict[str, Any]], key: str, subject: str) -> float | None:
    workload = next(w for w, k, _ in ROWS if k == key)
    for r in rows:
        if r["workload"] == workload and r["subject"] == subject:
            return float(r["value"])
    return None


def judge(rows: list[dict[str, Any]], ideal: float) -> None:
    """Mark the issue's targets met or missed on opsconsole's rows (ratios from this run)."""

    def set_target(key: str, subject: str, text: str, met: bool | None) -> None:
        workload = next(w for w, k, _ in ROWS if k == key)
        for r in rows:
            if r["workload"] == workload and r["subject"] == subject:
                r["target"] = text if r["target"] is None else f"{r['target']}; {text}"
                if met is not None:
                    r["met"] = met if r["met"] is None else (r["met"] and met)

    def ratio(key: str, a: str, b: str, at_least: float) -> None:
        va, vb = value(rows, key, a), value(rows, key, b)
        if va is None or vb is None or vb == 0:
            return
        set_target(key, a, f">= {at_least:g}x {b} (is {va / vb:.2f}x)", va / vb >= at_least)

    ratio("e2e", "opsconsole SQLite", "Huey (SQLite)", 1.5)
    ratio("e2e", "opsconsole SQLite", "raw sqlite3", 0.3)
    ratio("e2e", "opsconsole PostgreSQL", "Procrastinate (PG)", 3.0)
    ratio("e2e", "opsconsole PostgreSQL", "raw psycopg", 0.5)
    peers = ["Huey (SQLite)", "Procrastinate (PG)", "Celery (Redis)"]
    for ops in ("opsconsole SQLite", "opsconsole PostgreSQL"):
        celery = value(rows, "cpu", "Celery (Redis)")
        mine = value(rows, "cpu", ops)
        if celery is not None and mine is not None:
            set_target("cpu", ops, f"< Celery's {celery:.3g} ms", mine < celery)
        p99 = value(rows, "p99", ops)
        theirs = [v for p in peers if (v := value(rows, "p99", p)) is not None]
        if p99 is not None and theirs:
            set_target("p99", ops, f"< every peer's (best {min(theirs):.3g} ms)", p99 < min(theirs))
        nap = value(rows, "sleep", ops)
        if nap is not None:
            target = f"<= {ideal * 1.05:.4g} s (ideal {ideal:.3g} s + 5%)"
            set_target("sleep", ops, target, nap <= ideal * 1.05)


def table(result: dict[str, Any]) -> str:
    subjects: list[str] = []
    for r in result["rows"]:
        if r["subject"] not in subjects:
            subjects.append(r["subject"])
    cells: dict[tuple[str, str], str] = {}
    for r in result["rows"]:
        flag = {True: " ok", False: " MISS", None: ""}[r["met"]]
        cells[(r["workload"], r["subject"])] = f"{r['value']:.4g}{flag}"
    head = ["workload", *subjects]
    lines = [head] + [
        [w, *(cells.get((w, s), "-") for s in subjects)]
        for w, _, _ in ROWS
        if any((w, s) in cells for s in subjects)
    ]
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in lines
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="N=100, 20 pickups, 40 sleep jobs, one run"
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs per workload and subject")
    ap.add_argument("-n", type=int, default=3000, help="no-op jobs for end-to-end and drain")
    ap.add_argument("--pickups", type=int, default=200, help="jobs of the pickup workload")
    ap.add_argument("--naps", type=int, default=200, help="50 ms jobs of the sleep workload")
    ap.add_argument("--pg", default=os.environ.get("BENCH_PG", ""), help="admin libpq DSN")
    ap.add_argument("--pg-pid", type=int, default=int(os.environ.get("BENCH_PG_PID") or 0) or None)
    ap.add_argument("--redis", default=os.environ.get("BENCH_REDIS", ""), help="Redis URL")
    ap.add_argument(
        "--redis-pid", type=int, default=int(os.environ.get("BENCH_REDIS_PID") or 0) or None
    )
    ap.add_argument("--only", nargs="*", help="subjects whose name contains one of these words")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds one run may take")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--profile",
        type=Path,
        help="first profile opsconsole's end-to-end run (py-spy on the worker, pyinstrument "
        "on the submitter) into this directory",
    )
    args = ap.parse_args()
    if args.quick:
        args.repeat = 1
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(table(result))
    for note in result["notes"]:
        print(f"- {note}")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
