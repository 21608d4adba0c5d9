"""Combine the benches' results into one table (not a test).

    bench/.venv/bin/python bench/report.py                 every bench/results/*.json
    bench/.venv/bin/python bench/report.py --since EPOCH   only those written since (run.sh)

Reads each ``bench/results/X.json`` in the shared shape (``bench``, ``machine``, ``when``,
``rows`` of workload/subject/value/unit/spread/runs/target/met, ``notes``); files in another
shape are listed as skipped. Prints one table per bench (workloads down, subjects across,
median with its spread) and the targets met or missed, and writes
``bench/results/summary.json`` and ``bench/results/summary.md`` (the README's table, with
the machine it ran on).
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
OWN = {"summary.json"}
ORDER = ["queue", "worker", "submit", "store", "cli", "tui", "runners"]


def load(paths: list[Path], since: float | None) -> tuple[list[dict[str, Any]], list[str]]:
    found, skipped = [], []
    for path in sorted(paths):
        if path.name in OWN:
            continue
        if since is not None and path.stat().st_mtime < since:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            skipped.append(f"{path.name}: unreadable ({exc})")
            continue
        if not (isinstance(data, dict) and isinstance(data.get("rows"), list) and "bench" in data):
            skipped.append(f"{path.name}: not in the shared shape (no bench/rows)")
            continue
        found.append(data)
    found.sort(key=lambda d: (ORDER.index(d["bench"]) if d["bench"] in ORDER else 99, d["bench"]))
    return found, skipped


def number(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def cell(r: dict[str, Any], *, spread: bool = True) -> str:
    text = number(r["value"])
    lo, hi = (r.get("spread") or [None, None])[:2]
    if spread and r.get("runs", 1) > 1 and lo is not None and hi is not None and lo != hi:
        text += f" ({number(lo)}-{number(hi)})"
    met = r.get("met")
    if met is True:
        text += " ✓"
    elif met is False:
        text += " ✗"
    return text


def grid(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per workload and one column per subject; where a workload is measured in
    several units (jobs/s and CPU ms/job of one run; wall and CPU of one command) each unit
    gets a column of its own, named with it, so no figure hides another."""
    units: dict[str, set[str]] = {}
    for r in data["rows"]:
        units.setdefault(r["workload"], set()).add(r["unit"])
    subjects: list[str] = []
    workloads: list[str] = []
    cells: dict[tuple[str, str], str] = {}
    for r in data["rows"]:
        w = r["workload"]
        col = r["subject"] if len(units[w]) == 1 else f"{r['subject']} ({r['unit']})"
        if col not in subjects:
            subjects.append(col)
        if w not in workloads:
            workloads.append(w)
        cells[(w, col)] = cell(r)
    body = [[w, *(cells.get((w, s), "-") for s in subjects)] for w in workloads]
    return ["workload", *subjects], body


def targets(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for data in found:
        for r in data["rows"]:
            if r.get("target"):
                out.append(
                    {
                        "bench": data["bench"],
                        "workload": r["workload"],
                        "subject": r["subject"],
                        "value": r["value"],
                        "unit": r["unit"],
                        "target": r["target"],
                        "met": r.get("met"),
                    }
                )
    return out


def machine_line(m: dict[str, Any]) -> str:
    parts = [
        str(m.get("cpu", "?")),
        f"{m.get('cpus', '?')} cores",
        f"{m.get('ram_gb', '?')} GB RAM",
        f"Linux {m.get('kernel', '?')}",
        f"Python {m.get('python', '?')}",
    ]
    for key, label in (
        ("sqlite", "SQLite"),
        ("postgresql", "PostgreSQL"),
        ("redis", "Redis"),
        ("huey", "Huey"),
        ("procrastinate", "Procrastinate"),
        ("celery", "Celery"),
        ("sqlalchemy", "SQLAlchemy"),
    ):
        if key in m:
            parts.append(f"{label} {m[key]}")
    if "load_1m" in m:
        parts.append(f"load {m['load_1m']} at the start")
    return ", ".join(parts)


def text_table(head: list[str], body: list[list[str]]) -> str:
    rows = [head, *body]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def md_table(head: list[str], body: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in head) + " |"]
    lines.append("|" + "|".join("---" for _ in head) + "|")
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in body]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("paths", nargs="*", type=Path, help="result files (default: bench/results)")
    ap.add_argument("--since", type=float, help="only files written since this epoch second")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    paths = args.paths or list(RESULTS.glob("*.json"))
    found, skipped = load(paths, args.since)
    if not found:
        raise SystemExit("bench/report.py: no results in the shared shape to combine")
    machine = next((d["machine"] for d in found if d["bench"] == "queue"), found[0]["machine"])
    goals = targets(found)

    out_txt, md = [], []
    md.append(f"Measured {found[0]['when'][:10]} on {machine_line(machine)}.")
    md.append(
        "Medians of the runs with their spread (min-max) in brackets; ✓ / ✗ a target of "
        "issue 13 met / missed, ratios taken against peers measured in the same run."
    )
    for data in found:
        head, body = grid(data)
        out_txt.append(f"\n## {data['bench']}  ({data['when']})\n{text_table(head, body)}")
        md.append(f"\n### {data['bench']}\n\n{md_table(head, body)}")
        notes = data.get("notes") or []
        if notes:
            out_txt.append("\n".join(f"- {n}" for n in notes))
            md.append("\n" + "\n".join(f"- {n}" for n in notes))
    if goals:
        met = sum(1 for g in goals if g["met"] is True)
        missed = [g for g in goals if g["met"] is False]
        head = ["bench", "workload", "subject", "value", "target", "met"]
        body = [
            [
                g["bench"],
                g["workload"],
                g["subject"],
                f"{number(g['value'])} {g['unit']}",
                g["target"],
                {True: "✓", False: "✗", None: "?"}[g["met"]],
            ]
            for g in goals
        ]
        out_txt.append(f"\n## targets: {met} met, {len(missed)} missed\n{text_table(head, body)}")
        md.append(f"\n### Targets: {met} met, {len(missed)} missed\n\n{md_table(head, body)}")
    if skipped:
        out_txt.append("\nskipped: " + "; ".join(skipped))
    out_txt.insert(0, f"machine: {machine_line(machine)}")
    print("\n".join(out_txt))

    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "benches": {d["bench"]: d for d in found},
        "targets": goals,
        "skipped": skipped,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (args.out / "summary.md").write_text("\n".join(md) + "\n")
    print(f"\nwritten: {args.out / 'summary.json'}, {args.out / 'summary.md'}")


if __name__ == "__main__":
    main()
