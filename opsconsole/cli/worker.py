"""``worker`` runs a pool here; ``workers list|resize`` inspect and resize running ones."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsconsole.cli import output
from opsconsole.cli.exit_codes import ExitCode
from opsconsole.cli.helptext import Command, JsonOpt
from opsconsole.cli.session import STDERR_LOG, service

if TYPE_CHECKING:
    from opsconsole.core.service import OpsService
    from opsconsole.core.views import WorkerView

workers_app = typer.Typer(help="Running worker pools: list and resize.", no_args_is_help=True)


def worker(
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            metavar="N",
            help="Slots (default: CPU count).",
            show_default=False,
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Run every job that is ready now, print how they ended, then exit "
            "(1 if any did not succeed).",
        ),
    ] = False,
) -> None:
    """Run a worker pool until SIGTERM or Ctrl-C.

    The first signal drains (no new jobs; running ones get drain_grace to finish), a second
    stops at once. One log line on stderr per job start and end.

    Examples:

    \b
      opsconsole worker --workers 4
      opsconsole worker --once
    """
    from opsconsole.config import check_slots
    from opsconsole.runtime import start_pool

    if workers is not None:
        check_slots(workers, "--workers")
    handler = logging.StreamHandler()
    handler.setFormatter(output.LogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # instead of the command line's one-line handler (session.OneLineLog): a worker's log
    # keeps tracebacks
    logging.getLogger().removeHandler(STDERR_LOG)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    svc = service() if once else _service_when_reachable()
    pool = start_pool(svc, slots=workers, once=once)
    if once:
        ok = pool.run_once()
        if not ok:
            bad = [f"{job} {state}" for job, state in pool.outcomes if state != "succeeded"]
            logging.getLogger("opsconsole.worker").warning(
                "not all jobs succeeded: %s", ", ".join(bad)
            )
        output.line(once_summary(dict(pool.counts)))
        raise typer.Exit(ExitCode.OK if ok else ExitCode.JOB_FAILED)
    logging.getLogger("opsconsole.worker").info(
        "worker %s: %d slots on %s", pool.id, pool.slots, svc.store_description()
    )
    pool.run_forever()


WAIT_FIRST = 1.0
"""Seconds a starting worker waits before its second try to reach its store."""
WAIT_MAX = 30.0
"""The longest wait between two tries of a starting worker to reach its store."""


def _service_when_reachable() -> OpsService:
    """The store's service, once its server answers: a worker started while the server is
    down or restarting (a host that boots before its database) waits for it, saying so
    once, instead of exiting at once and being restarted into the same failure until its
    service manager gives up. A refusal (a wrong password, a missing database) still ends
    the command with its one line."""
    import time

    from opsconsole.core.errors import StoreUnavailable

    delay = WAIT_FIRST
    waited: float | None = None
    log = logging.getLogger("opsconsole.worker")
    while True:
        try:
            svc = service()
        except StoreUnavailable as exc:
            if not exc.away:
                raise
            if waited is None:
                waited = time.monotonic()
                log.error("waiting for the store: %s (retrying with backoff)", exc)
            time.sleep(delay)
            delay = min(delay * 2, WAIT_MAX)
            continue
        if waited is not None:
            log.warning("the store answers after %.0fs: starting", time.monotonic() - waited)
        return svc


def once_summary(counts: dict[str, int]) -> str:
    """``ran 3 jobs: 2 succeeded, 1 failed``: what a cron or CI log needs to see first."""
    runs = sum(counts.values())
    if not runs:
        return "ran no jobs: none was ready"
    order = ["succeeded", "partial", "failed", "timed_out", "cancelled", "interrupted"]
    names = {"scheduled": "failed with a retry scheduled", "queued": "requeued"}
    parts = [
        f"{counts[state]} {names.get(state, state)}"
        for state in sorted(counts, key=lambda s: (order.index(s) if s in order else 99, s))
        if counts[state]
    ]
    return f"ran {runs} job{'s' if runs != 1 else ''}: {', '.join(parts)}"


@workers_app.command("list", cls=Command)
def list_workers(
    all_: Annotated[bool, typer.Option("--all", help="Include stopped and dead workers.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List worker pools with their slots and last heartbeat.

    Examples:

    \b
      opsconsole workers list --all
    """
    svc = service()
    views = svc.workers(include_stopped=all_)
    if as_json:
        output.emit_json({"workers": [w.to_dict() for w in views]})
        return
    now = svc.now()
    output.table(
        None,
        ["WORKER", "HOST", "PID", "SLOTS", "BUSY", "STATE", "HEARTBEAT", "PROBLEM"],
        [
            (
                w.id,
                w.host,
                w.pid,
                w.slots if w.slots == w.desired_slots else f"{w.slots}->{w.desired_slots}",
                w.busy,
                _state(w),
                output.ago(w.heartbeat_at, now),
                w.problem or "",
            )
            for w in views
        ],
    )


def _state(w: WorkerView) -> Any:
    """What an operator must know first: a live pool that cannot work is not "running"."""
    if w.state in ("running", "draining") and not w.alive:
        return output.styled_state("failed") if w.state == "running" else w.state
    if w.alive and w.problem:
        return "unhealthy"
    return w.state


@workers_app.command("resize", cls=Command)
def resize(
    worker_id: Annotated[
        str,
        typer.Argument(metavar="WORKER", help="Worker id or unique prefix.", show_default=False),
    ],
    slots: Annotated[int, typer.Argument(metavar="N", help="New slot count.", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """Change a running worker's slot count.

    Slots are added at once and removed as they come free.
    """
    view = service().resize_worker(worker_id, slots)
    if as_json:
        output.emit_json(view.to_dict())
    else:
        output.line(f"{view.id}: {view.slots} -> {view.desired_slots} slots")


def register(app: Any) -> None:
    app.command("worker", cls=Command)(worker)
    app.add_typer(workers_app, name="workers")
