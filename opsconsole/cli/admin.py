"""``locks``, ``stats``, ``health`` and ``status`` (the queue at a glance, headless)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from opsconsole.cli import output
from opsconsole.cli.app import service
from opsconsole.cli.exit_codes import ExitCode

SPARK = {
    "succeeded": "▇",
    "partial": "▅",
    "failed": "▁",
    "timed_out": "▁",
    "cancelled": "▂",
    "interrupted": "▁",
    "rejected": "▂",
}


def locks(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Concurrency keys in use: who holds each, who waits, in order, and since when."""
    svc = service()
    views = svc.locks()
    if as_json:
        output.emit_json({"locks": [v.to_dict() for v in views]})
        return
    now = svc.now()
    output.table(
        None,
        ["KEY", "LIMIT", "HELD BY", "SINCE", "WAITING (in order)"],
        [
            (
                v.key,
                v.limit,
                ", ".join(h.job for h in v.holders) or "-",
                output.ago(v.since, now) if v.since else "-",
                " ".join(v.waiting) or "-",
            )
            for v in views
        ],
    )


def stats(
    since: Annotated[
        str | None, typer.Option(help="Only jobs of this period (e.g. 24h).", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Counts per state, success rate, and p50/p95 duration per template."""
    view = service().stats(since)
    if as_json:
        output.emit_json(view.to_dict())
        return
    output.line("  ".join(f"{k} {v}" for k, v in view.counts.items() if v) or "no jobs")
    if view.success_rate is not None:
        output.line(f"success rate {view.success_rate * 100:.1f}%")
    output.table(
        None,
        ["TEMPLATE", "RUNS", "OK", "FAILED", "SUCCESS", "P50", "P95", "RECENT"],
        [
            (
                t.template,
                t.runs,
                t.succeeded,
                t.failed,
                "-" if t.success_rate is None else f"{t.success_rate * 100:.0f}%",
                output.fmt_duration(t.p50_s),
                output.fmt_duration(t.p95_s),
                "".join(SPARK.get(s, "?") for s in t.recent),
            )
            for t in view.templates
        ],
    )


def health(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Check the store, the workers' heartbeats and disk space; exit 0 healthy, 1 not."""
    view = service().health()
    if as_json:
        output.emit_json(view.to_dict())
    else:
        for c in view.checks:
            output.line(
                f"{'ok  ' if c.ok else 'FAIL'} {c.name:<8} {c.detail}",
                style=None if c.ok else "red",
            )
    raise typer.Exit(ExitCode.OK if view.healthy else ExitCode.JOB_FAILED)


def status() -> None:
    """The queue at a glance, for a shell without the console (`opsconsole status`)."""
    svc = service()
    counts = svc.stats().counts
    workers = [w for w in svc.workers() if w.alive]
    output.line(f"opsconsole on {svc.store_description()}", style="bold")
    live = ["awaiting_approval", "waiting", "scheduled", "queued", "running"]
    output.line("queue: " + "  ".join(f"{s} {counts.get(s, 0)}" for s in live))
    busy, slots = sum(w.busy for w in workers), sum(w.slots for w in workers)
    output.line(f"workers: {len(workers)} alive, {busy}/{slots} slots busy")
    names = [t.name for t in svc.templates()]
    output.line(
        f"templates ({len(names)}): {', '.join(names[:12])}{' …' if len(names) > 12 else ''}"
    )
    output.line(
        "try: opsconsole templates list | submit NAME -p KEY=VALUE --wait | jobs list | worker",
        style="dim",
    )


def register(app: Any) -> None:
    app.command("locks")(locks)
    app.command("stats")(stats)
    app.command("health")(health)
    app.command("status")(status)
