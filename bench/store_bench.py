"""Benchmark of the store at a million jobs (not a test): ``stats``, History and ``jobs list``
as service calls and as CLI commands.

    .venv/bin/python bench/store_bench.py                 (builds a 1,000,000-job store once)
    .venv/bin/python bench/store_bench.py --quick         (50,000 jobs, under a minute)
    .venv/bin/python bench/store_bench.py --store /tmp/big.db   (an existing store, kept)
    .venv/bin/python bench/store_bench.py --store postgresql://.../ops

The store comes from ``bench/bigstore.py`` (six templates, a month of history). Each workload
runs ``--runs`` times after one warm-up; the table shows the median wall time, its spread
(min..max) and the median CPU time of this process (service calls) or of the command
(CLI, from ``RUSAGE_CHILDREN``): on a loaded machine CPU time is the steadier figure.

- ``stats``, ``stats --since 24h``: ``OpsService.stats``;
- History first page, and a page at its very end (keyset: the page before the 100 oldest
  finished jobs; reaching it by paging is only its own rows, so it is timed alone);
- ``jobs list`` filtered by state, by template, by ``--since 24h``, and page 200 of one state;
- the same as ``opsconsole`` commands (``stats``, ``stats --since 24h``,
  ``jobs list --state failed``), each a new process: startup included.

Results go to ``bench/results/store.json`` (the brief's shape) and a table on stdout.
``--src DIR`` imports opsconsole from another checkout (e.g. ``main``) for a before/after on
the same store: give it a copy, its schema is upgraded by whichever code opens it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import describe

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "store.json"
TARGETS_MS = {"stats": 1000.0, "stats --since 24h": 300.0}


def measure(fn: Callable[[], Any], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of ``runs`` calls after a warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return wall, cpu


def measure_command(argv: list[str], env: dict[str, str], runs: int) -> tuple[list[float], ...]:
    """Wall and CPU (the child's user + system) milliseconds of a command, after a warm-up."""

    def once() -> tuple[float, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        wall = (time.perf_counter() - t) * 1000
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"bench: {' '.join(argv)} failed: {done.stderr.strip()[:300]}")
        cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
        return wall, cpu

    once()
    pairs = [once() for _ in range(runs)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def row(workload: str, subject: str, values: list[float], unit: str) -> dict[str, Any]:
    target = TARGETS_MS.get(workload) if subject.endswith("wall") else None
    median = statistics.median(values)
    return {
        "workload": workload,
        "subject": subject,
        "value": round(median, 2),
        "unit": unit,
        "spread": [round(min(values), 2), round(max(values), 2)],
        "runs": len(values),
        "target": None if target is None else f"< {target:g} ms",
        "met": None if target is None else median < target,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1_000_000, help="jobs in a store this builds")
    ap.add_argument("--store", help="use this store (path or URL) as it is; built if missing")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per workload")
    ap.add_argument("--quick", action="store_true", help="50,000 jobs, 3 runs")
    ap.add_argument("--no-cli", action="store_true", help="service calls only")
    ap.add_argument("--src", type=Path, help="import opsconsole from this checkout")
    ap.add_argument("--label", default="", help="a name for this run in the table")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.quick:
        args.jobs, args.runs = 50_000, 3
    if args.src is not None:
        sys.path.insert(0, str(args.src.resolve()))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bigstore

    from opsconsole.config import load_settings
    from opsconsole.core.service import ListRequest
    from opsconsole.runtime import open_service

    tmp = Path(tempfile.mkdtemp(prefix="store-bench-"))
    store = args.store or str(tmp / "big.db")
    url = bigstore.store_url(store)
    fresh = "://" not in store and not Path(store).exists()
    if fresh:
        t = time.perf_counter()
        bigstore.build(store, args.jobs, seed=1)
        print(f"built {args.jobs:,} jobs in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    (tmp / "catalog" / "templates").mkdir(parents=True, exist_ok=True)
    settings = load_settings(home=tmp, catalog=tmp / "catalog", db=url)
    t = time.perf_counter()
    service = open_service(settings)
    opened_s = time.perf_counter() - t
    counts = service.counts()
    total = sum(counts.values())
    print(f"{total:,} jobs in {service.db.describe()} (opened in {opened_s:.1f}s)", file=sys.stderr)

    # the key of the page at History's end: the 100 oldest finished jobs come after it
    oldest = service.history(limit=1)
    tail_key = None
    if oldest:
        from opsconsole.core.store.db import jobs

        with service.db.read() as conn:
            import sqlalchemy as sa

            found = conn.execute(
                sa.select(jobs.c.finished_at, jobs.c.id)
                .where(jobs.c.finished_at.is_not(None))
                .order_by(jobs.c.finished_at, jobs.c.id)
                .limit(1)
                .offset(100)
            ).first()
        tail_key = None if found is None else (found[0], found[1])

    calls: dict[str, Callable[[], Any]] = {
        "stats": lambda: service.stats(),
        "stats --since 24h": lambda: service.stats("24h"),
        "History first page": lambda: service.history(limit=100),
        "History last page": lambda: service.history(before=tail_key, limit=100),
        "jobs list --state failed": lambda: service.list_jobs(ListRequest(states=("failed",))),
        "jobs list --template deploy-app": lambda: service.list_jobs(
            ListRequest(template="deploy-app")
        ),
        "jobs list --since 24h": lambda: service.list_jobs(ListRequest(since="24h")),
        "jobs list --state failed --page 200": lambda: service.list_jobs(
            ListRequest(states=("failed",), page=200)
        ),
    }
    label = f"{args.label} " if args.label else ""
    rows: list[dict[str, Any]] = []
    for name, fn in calls.items():
        wall, cpu = measure(fn, args.runs)
        rows.append(row(name, f"{label}service wall", wall, "ms"))
        rows.append(row(name, f"{label}service cpu", cpu, "ms"))
        print(f"  {name}: {statistics.median(wall):.0f} ms", file=sys.stderr)
    if not args.no_cli:
        exe = Path(sys.executable).parent / "opsconsole"
        env = {**os.environ, "OPSCONSOLE_HOME": str(tmp), "OPSCONSOLE_DB": url}
        env["OPSCONSOLE_CATALOG"] = str(tmp / "catalog")
        if args.src is not None:
            env["PYTHONPATH"] = str(args.src.resolve())
        commands = {
            "stats": ["stats"],
            "stats --since 24h": ["stats", "--since", "24h"],
            "jobs list --state failed": ["jobs", "list", "--state", "failed"],
        }
        for name, tail in commands.items():
            wall, cpu = measure_command([str(exe), *tail], env, args.runs)
            rows.append(row(name, f"{label}cli wall", wall, "ms"))
            rows.append(row(name, f"{label}cli cpu", cpu, "ms"))
            print(
                f"  opsconsole {' '.join(tail)}: {statistics.median(wall):.0f} ms", file=sys.stderr
            )
    service.db.dispose()

    result = {
        "bench": "store",
        "machine": describe(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "notes": [
            f"{total:,} jobs ({counts.get('succeeded', 0):,} succeeded) in {service.db.dialect}",
            f"medians of {args.runs} runs after a warm-up; CLI rows include process start",
            "History last page: the keyset page before the 100 oldest finished jobs",
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    width = max(len(r["workload"]) for r in rows)
    print(f"{'workload':<{width}}  {'subject':<22} {'median':>9}  spread")
    for r in rows:
        lo, hi = r["spread"]
        met = "" if r["met"] is None else ("  met" if r["met"] else "  MISSED " + r["target"])
        print(
            f"{r['workload']:<{width}}  {r['subject']:<22} {r['value']:>7.1f}{r['unit']}"
            f"  {lo:.1f}..{hi:.1f}{met}"
        )
    if fresh:
        for p in tmp.glob("big.db*"):
            p.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
