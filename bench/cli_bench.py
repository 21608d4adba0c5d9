"""Benchmark of the command line (not a test): how long each everyday command takes to answer,
as a whole process, on an empty store and on one with a large history.

    .venv/bin/python bench/cli_bench.py            (1,000,000 jobs: several minutes to seed)
    .venv/bin/python bench/cli_bench.py --quick    (20,000 jobs, 2 runs: about a minute when quiet)

The floor is ``python -c "import typer"``: a Typer command cannot start faster than Typer
imports. Each command runs ``--runs`` times after one warm-up, the commands taking turns
(so a noisy moment of a shared machine spreads over all of them), with bytecode caching
on (as an installed opsconsole runs) and its output piped (as a script reads it). For each
command: the median wall time with its min and max, the median CPU time of the process (user
+ system, from the kernel's accounting of the finished child: steadier than wall time on a
loaded machine), and the ratio of the medians to the floor's, against the issue's targets.

The large store is seeded with ``seed_history`` of ``bench/tui_bench.py`` (finished jobs over
30 days, two audit events each); ``--keep DIR`` keeps it (and reuses it on the next run).
Results go to ``bench/results/cli.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import describe

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "cli.json"
BIN = Path(sys.executable).parent / "opsconsole"

HELLO = """\
name: hello
description: A no-op shell job for the benchmark
runner: shell
command: ["true", "{{ name }}"]
params:
  name: {type: string, default: ops}
"""

FLOOR = "python -c 'import typer'"
TARGETS: dict[str, tuple[str, float]] = {
    "--help": ("ratio", 1.5),
    "templates list": ("ratio", 2.0),
    "jobs list": ("ratio", 2.0),
    "jobs show": ("ratio", 2.0),
    "health": ("ratio", 2.0),
    "stats --since 24h": ("ms", 300.0),
    "stats": ("ms", 1000.0),
}
"""The issue's targets: a ratio of the median wall time to the floor's, or milliseconds
(``stats`` only with the large store)."""


def commands(job_id: str) -> list[tuple[str, list[str]]]:
    """(workload, argv) for each command measured; ``job_id`` is a job in the store."""
    return [
        ("--help", ["--help"]),
        ("templates list", ["templates", "list"]),
        ("submit", ["submit", "hello", "-p", "name=bench", "--json"]),
        ("jobs list", ["jobs", "list"]),
        ("jobs list --json", ["jobs", "list", "--json"]),
        ("jobs show", ["jobs", "show", job_id]),
        ("health", ["health"]),
        ("stats --since 24h", ["stats", "--since", "24h"]),
        ("stats", ["stats"]),
    ]


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed opsconsole has its .pyc files
    env.update(
        OPSCONSOLE_HOME=str(home),
        OPSCONSOLE_DB=f"sqlite:///{home / 'opsconsole.db'}",
        OPSCONSOLE_CATALOG=str(home / "catalog"),
    )
    return env


def make_home(home: Path, jobs: int) -> str:
    """A state directory with a catalog and a store of ``jobs`` finished jobs; returns the
    id of a job in it (one submitted through the service)."""
    (home / "catalog" / "templates").mkdir(parents=True, exist_ok=True)
    (home / "catalog" / "templates" / "hello.yaml").write_text(HELLO)
    sys.path.insert(0, str(REPO / "bench"))
    from tui_bench import seed_history

    from opsconsole.config import load_settings
    from opsconsole.core.service import SubmitRequest
    from opsconsole.runtime import open_service

    env = environment(home)
    settings = load_settings(home=home, db=env["OPSCONSOLE_DB"], catalog=home / "catalog")
    service = open_service(settings)
    try:
        if jobs:
            started = time.monotonic()
            print(f"seeding {jobs:,} jobs in {home} ...", file=sys.stderr, flush=True)
            seed_history(
                home / "opsconsole.db",
                jobs,
                random.Random(13),
                lambda msg: print(msg, file=sys.stderr, flush=True),
            )
            print(f"seeded in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        return service.submit(SubmitRequest(template="hello")).id
    finally:
        service.db.dispose()


def job_count(home: Path) -> int:
    conn = sqlite3.connect(f"file:{home / 'opsconsole.db'}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])
    finally:
        conn.close()


def any_job(home: Path) -> str:
    conn = sqlite3.connect(f"file:{home / 'opsconsole.db'}?mode=ro", uri=True)
    try:
        return str(conn.execute("SELECT id FROM jobs ORDER BY created_at DESC").fetchone()[0])
    finally:
        conn.close()


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, CPU s, exit code) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False, timeout=300)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def measure(
    cases: list[tuple[str, list[str]]], env: dict[str, str], runs: int
) -> dict[str, dict[str, Any]]:
    """Each case ``runs`` times after a warm-up, the cases taking turns."""
    out: dict[str, dict[str, Any]] = {n: {"wall": [], "cpu": [], "codes": set()} for n, _ in cases}
    for _, argv in cases:
        run_once(argv, env)  # warm-up: caches, .pyc files
    for _ in range(runs):
        for name, argv in cases:
            wall, cpu, code = run_once(argv, env)
            out[name]["wall"].append(wall)
            out[name]["cpu"].append(cpu)
            out[name]["codes"].add(code)
    return out


def rows_for(store: str, found: dict[str, dict[str, Any]], runs: int) -> list[dict[str, Any]]:
    floor = statistics.median(found[FLOOR]["wall"])
    floor_cpu = statistics.median(found[FLOOR]["cpu"])
    rows = []
    for name, got in found.items():
        wall, cpu = got["wall"], got["cpu"]
        subject = "python" if name == FLOOR else "opsconsole"
        workload = f"{name} ({store})"
        rows.append(
            {
                "workload": workload,
                "subject": subject,
                "value": round(statistics.median(wall) * 1000, 1),
                "unit": "ms wall",
                "spread": [round(min(wall) * 1000, 1), round(max(wall) * 1000, 1)],
                "runs": runs,
                "target": None,
                "met": None,
            }
        )
        rows.append(
            {
                "workload": workload,
                "subject": subject,
                "value": round(statistics.median(cpu) * 1000, 1),
                "unit": "ms cpu",
                "spread": [round(min(cpu) * 1000, 1), round(max(cpu) * 1000, 1)],
                "runs": runs,
                "target": None,
                "met": None,
            }
        )
        if name == FLOOR:
            continue
        kind, limit = TARGETS.get(name, ("ratio", 0.0))
        ratio = statistics.median(wall) / floor
        ratios = sorted(w / floor for w in wall)
        target = f"<= {limit:g}x" if kind == "ratio" and limit else None
        rows.append(
            {
                "workload": workload,
                "subject": "opsconsole / import typer",
                "value": round(ratio, 2),
                "unit": "x wall",
                "spread": [round(ratios[0], 2), round(ratios[-1], 2)],
                "runs": runs,
                "target": target,
                "met": None if target is None else ratio <= limit,
            }
        )
        rows.append(
            {
                "workload": workload,
                "subject": "opsconsole / import typer",
                "value": round(statistics.median(cpu) / floor_cpu, 2),
                "unit": "x cpu",
                "spread": [
                    round(min(cpu) / floor_cpu, 2),
                    round(max(cpu) / floor_cpu, 2),
                ],
                "runs": runs,
                "target": target,
                "met": None if target is None else statistics.median(cpu) / floor_cpu <= limit,
            }
        )
        if kind == "ms" and store != "empty":
            rows[-4]["target"] = f"< {limit:g} ms"
            rows[-4]["met"] = statistics.median(wall) * 1000 < limit
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'workload':<38} {'subject':<26} {'median':>9} {'unit':<8} {'min..max':<19} target")
    for r in rows:
        spread = f"{r['spread'][0]:g}..{r['spread'][1]:g}"
        verdict = "" if r["met"] is None else ("met" if r["met"] else "MISSED")
        target = f"{r['target']} {verdict}" if r["target"] else ""
        print(
            f"{r['workload']:<38} {r['subject']:<26} {r['value']:>9g} {r['unit']:<8} "
            f"{spread:<19} {target}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs in the large store")
    parser.add_argument("--runs", type=int, default=7, help="counted runs of each command")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="20,000 jobs and 2 runs: about a minute on a quiet machine",
    )
    parser.add_argument(
        "--keep", type=Path, help="keep the large store's directory here (reused when present)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.runs = min(args.jobs, 20_000), 2
    notes = [
        "whole processes, output piped, bytecode cached; each command runs --runs times "
        "after a warm-up, the commands taking turns",
        "'x wall' and 'x cpu' are the command's median over the floor's "
        "(python -c 'import typer') measured in the same run",
    ]
    scratch = Path(tempfile.mkdtemp(prefix="cli-bench-"))
    rows: list[dict[str, Any]] = []
    try:
        stores: list[tuple[str, Path, int]] = [("empty", scratch / "empty", 0)]
        big = args.keep or scratch / "big"
        stores.append((f"{args.jobs:,} jobs", big, args.jobs))
        for label, home, n in stores:
            if (home / "opsconsole.db").exists() and job_count(home) >= n:
                job_id = any_job(home)
                notes.append(f"{label}: reused the store in {home}")
            else:
                job_id = make_home(home, n)
            env = environment(home)
            cases = [(FLOOR, [sys.executable, "-c", "import typer"])]
            cases += [(name, [str(BIN), *argv]) for name, argv in commands(job_id)]
            found = measure(cases, env, args.runs)
            for name, got in found.items():
                if got["codes"] - {0, 1}:
                    notes.append(f"{label}: {name} exited {sorted(got['codes'])}")
            rows += rows_for(label, found, args.runs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.quick:
        notes.append(f"--quick: {args.jobs:,} jobs, {args.runs} runs (not the issue's 1,000,000)")
    result = {
        "bench": "cli",
        "machine": describe(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "notes": notes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(rows)
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
