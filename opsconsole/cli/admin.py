"""``locks``, ``stats``, ``health``, ``status`` (the queue at a glance, headless) and ``db``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from opsconsole.cli import output
from opsconsole.cli.exit_codes import ExitCode
from opsconsole.cli.helptext import Command, JsonOpt
from opsconsole.cli.session import notice, service, settings
from opsconsole.core.errors import InvalidParams

db_app = typer.Typer(
    help="The store itself: retention, backups, upkeep and its secret key.", no_args_is_help=True
)

SPARK = {
    "succeeded": "▇",
    "partial": "▅",
    "failed": "▁",
    "timed_out": "▁",
    "cancelled": "▂",
    "interrupted": "▁",
    "rejected": "▂",
}


def locks(as_json: JsonOpt = False) -> None:
    """Concurrency keys in use.

    Who holds each key, who waits for it (in order) and since when.
    """
    svc = service()
    views = svc.locks()
    if as_json:
        output.emit_json({"locks": [v.to_dict() for v in views]})
        return
    if not views:
        output.line("no concurrency keys are held")
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
        str | None,
        typer.Option(
            metavar="DURATION", help="Only jobs of this period (e.g. 24h).", show_default=False
        ),
    ] = None,
    team: Annotated[
        str | None,
        typer.Option(metavar="TEAM", help="Only the jobs of this team.", show_default=False),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Counts per state, success rate and durations per template.

    Partial runs are counted apart from successes and failures. p50/p95 are durations.

    Examples:

    \b
      opsconsole stats --since 24h
      opsconsole stats --team web
    """
    view = service().stats(since, team=team)
    if as_json:
        output.emit_json(view.to_dict())
        return
    output.line("  ".join(f"{k} {v}" for k, v in view.counts.items() if v) or "no jobs")
    if view.success_rate is not None:
        output.line(f"success rate {view.success_rate * 100:.1f}%")
    output.table(
        None,
        ["TEMPLATE", "RUNS", "OK", "PARTIAL", "FAILED", "SUCCESS", "P50", "P95", "RECENT"],
        [
            (
                t.template,
                t.runs,
                t.succeeded,
                t.partial,
                t.failed,
                "-" if t.success_rate is None else f"{t.success_rate * 100:.0f}%",
                output.fmt_duration(t.p50_s),
                output.fmt_duration(t.p95_s),
                "".join(SPARK.get(s, "?") for s in t.recent),
            )
            for t in view.templates
        ],
    )


def health(as_json: JsonOpt = False) -> None:
    """Check the store, workers, disk and catalog (for monitoring).

    Exit 0 when healthy, 1 when not (also when the store cannot be opened: --json still
    answers). Each check and its threshold is listed in the README.

    Examples:

    \b
      opsconsole health
      opsconsole health --json
    """
    from opsconsole.core.errors import OpsError
    from opsconsole.core.views import HealthCheck, HealthView
    from opsconsole.runtime import check_health

    try:
        view = check_health(settings(), notice=notice)
    except OpsError as exc:  # the settings themselves: no store to look at
        view = HealthView([HealthCheck("config", False, str(exc))])
    if as_json:
        output.emit_json(view.to_dict())
    else:
        width = max([8, *(len(c.name) for c in view.checks)])
        for c in view.checks:
            output.line(
                f"{'ok  ' if c.ok else 'FAIL'} {c.name:<{width}} {c.detail}",
                style=None if c.ok else "red",
            )
    raise typer.Exit(ExitCode.OK if view.healthy else ExitCode.JOB_FAILED)


def status() -> None:
    """The queue at a glance, for a shell without the console."""
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


@db_app.command("reset-key", cls=Command)
def reset_key(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Adopt this host's secret key when the store's key is lost.

    Makes this host's key the store's.
    Restore the lost key file (or set OPSCONSOLE_SECRET_KEY) instead if you still can: this
    cancels the pending jobs whose secrets the new key cannot open (retry them with their
    secrets again). Restart running workers afterwards so they use the new key.
    """
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidParams(
                "db reset-key cancels the pending jobs whose secrets cannot be opened: "
                "add --yes to go ahead"
            )
        typer.confirm(
            "Make this host's key the store's and cancel the pending jobs whose secrets it "
            "cannot open?",
            abort=True,
        )
    svc = service()
    found, cancelled = svc.reset_key()
    if as_json:
        output.emit_json({"fingerprint": found, "cancelled": cancelled})
        return
    output.line(f"{svc.store_description()}: secrets are now sealed with key {found}")
    if cancelled:
        output.line(
            f"cancelled {len(cancelled)} pending job(s) whose secrets were sealed with the lost "
            f"key: {' '.join(cancelled)} (retry each with its secrets: jobs retry ID -p NAME=...)"
        )
    output.line("restart running workers so that they use this key", style="dim")


@db_app.command("prune", cls=Command)
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be removed.")
    ] = False,
    older_than: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Remove finished jobs older than this instead of retention_jobs.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove old finished jobs and log lines, as retention allows.

    Counts per kind are printed (with --dry-run nothing is removed). Audit events of pruned
    jobs are kept, and so is anything a live job needs. Workers do this every 10 minutes on
    their own; this runs it now. Exit 2 when a retention is invalid or shorter than a running
    job's age.

    Examples:

    \b
      opsconsole db prune --dry-run
      opsconsole db prune --older-than 90d
    """
    view = service().prune(dry_run=dry_run, older_than=older_than)
    if as_json:
        output.emit_json(view.to_dict())
        return
    verb = "would remove" if view.dry_run else "removed"
    output.table(
        None,
        ["KIND", verb.upper()],
        [(kind.replace("_", " "), n) for kind, n in view.counts.items()],
    )
    when = "%Y-%m-%d %H:%M UTC"
    jobs_before = view.jobs_before.strftime(when) if view.jobs_before else "never (retention 0)"
    logs_before = view.logs_before.strftime(when) if view.logs_before else "with their job"
    output.line(f"jobs finished before {jobs_before}; log lines before {logs_before}", style="dim")
    if view.plan_files:
        output.line(f"removed {view.plan_files} saved plan file(s) of pruned jobs", style="dim")
    for kept in view.kept:
        output.line(f"kept: {kept}", style="dim")


@db_app.command("backup", cls=Command)
def backup(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="Where the copy goes (a new file).", show_default=False
        ),
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy the store to FILE while workers keep running.

    A consistent copy of everything committed when it began (SQLite's online backup),
    private to you (0600). On PostgreSQL it prints the pg_dump command to run instead and
    exits 2. To restore: stop the workers, put FILE in place of the store file.

    Examples:

    \b
      opsconsole db backup /var/backups/opsconsole-$(date +%F).db
    """
    view = service().backup(file, force=force)
    if as_json:
        output.emit_json(view.to_dict())
        return
    output.line(f"backed up to {view.path} ({view.bytes} bytes, {view.pages} pages)")


@db_app.command("vacuum", cls=Command)
def vacuum(as_json: JsonOpt = False) -> None:
    """Give the space of pruned rows back to the file system.

    SQLite rewrites the whole file; writers wait meanwhile, so run it when the store is
    quiet (after a large prune).
    """
    before, after = service().vacuum()
    if as_json:
        output.emit_json({"bytes_before": before, "bytes_after": after})
        return
    if before is None or after is None:
        output.line("vacuumed")
    else:
        output.line(f"vacuumed: {before} -> {after} bytes")


@db_app.command("check", cls=Command)
def check(as_json: JsonOpt = False) -> None:
    """Check the store's integrity and schema revision.

    Also its foreign keys and journal mode. Exit 0 when every check passes, 1 when one
    fails.
    """
    view = service().check_store()
    if as_json:
        output.emit_json(view.to_dict())
    else:
        width = max(len(c.name) for c in view.checks)
        for c in view.checks:
            output.line(
                f"{'ok  ' if c.ok else 'FAIL'} {c.name:<{width}} {c.detail}",
                style=None if c.ok else "red",
            )
    raise typer.Exit(ExitCode.OK if view.healthy else ExitCode.JOB_FAILED)


@db_app.command("upgrade", cls=Command)
def upgrade(
    force: Annotated[
        bool,
        typer.Option("--force", help="Upgrade even while running jobs hold leases."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Upgrade the store's schema to this opsconsole's.

    Workers and commands upgrade an older store on their own when they open it; on
    PostgreSQL they do not while running jobs hold leases (workers of other hosts may run
    the older code), and this command refuses too (exit 5) unless --force. One process
    migrates at a time; the others wait for it.

    Examples:

    \b
      opsconsole db upgrade
      opsconsole db upgrade --force
    """
    from opsconsole.runtime import upgrade_store

    where, before, after = upgrade_store(settings(), force=force, notice=notice)
    if as_json:
        output.emit_json({"store": where, "from": before, "to": after})
        return
    if before == after:
        output.line(f"{where}: schema already at revision {after}")
    else:
        output.line(f"{where}: schema upgraded from revision {before or 'none'} to {after}")


@db_app.command("roles", cls=Command)
def db_roles(as_json: JsonOpt = False) -> None:
    """Who holds which opsconsole role in the database.

    PostgreSQL only. Also says who this command is connected as: with peer
    authentication, your login.
    """
    view = service().db_roles()
    if as_json:
        output.emit_json(view.to_dict())
        return
    bound = "trusted (a worker or the owner)" if view.trusted else "bound by the rules"
    output.line(f"connected as {view.session}: {bound}", style="dim")
    output.table(None, ["LOGIN", "ROLE"], [(g.login, g.role) for g in view.grants])


@db_app.command("grant", cls=Command)
def db_grant(
    login: Annotated[
        str, typer.Argument(metavar="LOGIN", help="A Unix login name.", show_default=False)
    ],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            metavar="ROLE",
            help="viewer, operator, approver, admin (as in opsconsole.toml's [roles]) or "
            "worker (a pool's role). Replaces any opsconsole role LOGIN held.",
            show_default=False,
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Give LOGIN an opsconsole role in the database.

    LOGIN connects as itself, without a password (peer authentication). PostgreSQL
    only; run it as a role that may create roles. The database then holds
    four-eyes and the approval gate for LOGIN even at a psql prompt.

    Examples:

    \b
      opsconsole db grant alice --role approver
      opsconsole db grant opsworker --role worker
    """
    done = service().db_grant(login, role)
    if as_json:
        output.emit_json(done.to_dict())
        return
    output.line(f"{done.login} holds the {done.role} role in the database")


@db_app.command("revoke", cls=Command)
def db_revoke(
    login: Annotated[
        str, typer.Argument(metavar="LOGIN", help="A Unix login name.", show_default=False)
    ],
    as_json: JsonOpt = False,
) -> None:
    """Take every opsconsole role from LOGIN.

    PostgreSQL only; the login role itself stays.
    """
    held = service().db_revoke(login)
    if as_json:
        output.emit_json({"login": login, "revoked": held})
        return
    output.line(f"{login}: revoked {', '.join(held) or 'nothing (it held no opsconsole role)'}")


def register(app: Any) -> None:
    app.command("locks", cls=Command)(locks)
    app.command("stats", cls=Command)(stats)
    app.command("health", cls=Command)(health)
    app.command("status", cls=Command)(status)
    app.add_typer(db_app, name="db")
