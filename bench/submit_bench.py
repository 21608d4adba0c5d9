"""Benchmark of the submit path (not a test): CPU per no-op submit, on SQLite and PostgreSQL.

    .venv/bin/python bench/submit_bench.py            (a few minutes; --quick: under a minute)

One client calls ``OpsService.submit(SubmitRequest("noop"))`` for a Python handler template
(``isolate: false``) ``--jobs`` times in a row after a warm-up, with no worker running, and
measures this process's CPU time (``time.process_time``) and wall time per submit; then the
same jobs through ``submit_many`` in batches of ``--batch``. PostgreSQL runs on a private
temporary cluster (``tests/pg_support.py``); ``--no-pg`` leaves it out. Medians of
``--repeat`` runs with their spread go to a table on stdout and ``bench/results/submit.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import describe

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "submit.json"
TARGET_CPU_MS = 0.3
"""The issue's aim for one no-op submit on SQLite (a client submitting > 2,500 jobs/s)."""


def catalog(root: Path) -> Path:
    cat = root / "catalog"
    (cat / "templates").mkdir(parents=True)
    (cat / "bench_noop.py").write_text("def run(ctx):\n    return None\n")
    (cat / "templates" / "noop.yaml").write_text(
        "name: noop\nrunner: python\nhandler: bench_noop:run\nisolate: false\n"
    )
    return cat


@contextmanager
def sqlite_store(root: Path) -> Iterator[str]:
    yield f"sqlite:///{root / 'bench.db'}"


@contextmanager
def pg_store(root: Path) -> Iterator[str]:
    sys.path.insert(0, str(REPO / "tests"))
    from pg_support import missing, start_cluster

    why = missing()
    if why:
        raise SystemExit(f"PostgreSQL: {why} (use --no-pg)")
    clusters = start_cluster()
    cluster = next(clusters)
    try:
        yield cluster.create_database()
    finally:
        next(clusters, None)


def measure(call: Callable[[], Any], n: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per call of ``call`` made ``n`` times."""
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        call()
    return (time.process_time() - c0) * 1000 / n, (time.perf_counter() - w0) * 1000 / n


def run_store(url: str, cat: Path, home: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    from opsconsole.config import load_settings
    from opsconsole.core.service import SubmitRequest
    from opsconsole.runtime import open_service

    svc = open_service(load_settings(home=home, catalog=cat, db=url), notice=lambda *a, **k: None)
    req = SubmitRequest("noop")
    batch = [req] * args.batch
    for _ in range(args.warmup):
        svc.submit(req)
    out: dict[str, list[float]] = {"cpu": [], "wall": [], "many_cpu": [], "many_wall": []}
    try:
        for _ in range(args.repeat):
            cpu, wall = measure(lambda: svc.submit(req), args.jobs)
            out["cpu"].append(cpu)
            out["wall"].append(wall)
            if not hasattr(svc, "submit_many"):  # measuring an older checkout
                continue
            rounds = max(1, args.jobs // args.batch)
            cpu, wall = measure(lambda: svc.submit_many(batch), rounds)
            out["many_cpu"].append(cpu / args.batch)
            out["many_wall"].append(wall / args.batch)
    finally:
        svc.db.dispose()
    return out


def row(
    workload: str,
    subject: str,
    values: list[float],
    unit: str,
    target: str | None,
    met: bool | None,
) -> dict[str, Any]:
    return {
        "workload": workload,
        "subject": subject,
        "value": round(statistics.median(values), 4),
        "unit": unit,
        "spread": [round(min(values), 4), round(max(values), 4)],
        "runs": len(values),
        "target": target,
        "met": met,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000, help="submits per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per store (median)")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--batch", type=int, default=100, help="requests per submit_many")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--quick", action="store_true", help="a smoke run (under a minute)")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.repeat, args.warmup = 500, 1, 50
    rows: list[dict[str, Any]] = []
    stores = [("opsconsole SQLite", sqlite_store)]
    if not args.no_pg:
        stores.append(("opsconsole PostgreSQL", pg_store))
    for subject, store in stores:
        with tempfile.TemporaryDirectory(prefix="submit-bench-") as tmp:
            root = Path(tmp)
            cat = catalog(root)
            with store(root) as url:
                got = run_store(url, cat, root, args)
        sqlite = subject.endswith("SQLite")
        cpu = statistics.median(got["cpu"])
        many = (
            [
                row(
                    f"CPU ms per job, submit_many of {args.batch}",
                    subject,
                    got["many_cpu"],
                    "ms",
                    None,
                    None,
                ),
                row(
                    f"wall ms per job, submit_many of {args.batch}",
                    subject,
                    got["many_wall"],
                    "ms",
                    None,
                    None,
                ),
            ]
            if got["many_cpu"]
            else []
        )
        rows += [
            row(
                "CPU ms per no-op submit (client)",
                subject,
                got["cpu"],
                "ms",
                f"< {TARGET_CPU_MS} ms" if sqlite else None,
                cpu < TARGET_CPU_MS if sqlite else None,
            ),
            row("wall ms per no-op submit (client)", subject, got["wall"], "ms", None, None),
            *many,
        ]
    width = max(len(r["workload"]) for r in rows)
    print(f"{'workload':<{width}}  {'subject':<22} {'median':>9}  spread")
    for r in rows:
        lo, hi = r["spread"]
        print(f"{r['workload']:<{width}}  {r['subject']:<22} {r['value']:>9.3f}  {lo:.3f}-{hi:.3f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "bench": "submit",
                "machine": describe(),
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "rows": rows,
                "notes": [
                    f"{args.jobs} submits per run after {args.warmup} warm-up, "
                    f"{args.repeat} run(s); no worker running; CPU is this process's "
                    "(time.process_time)",
                ],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
