"""Running one claimed attempt: its context, log sink, runner and watchdogs.

The only place that turns a claimed row into a running job. It never records the end
(the pool does, through the recorder) and never raises: whatever a runner or handler
does, even ``SystemExit``, becomes a ``RunResult``.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsconsole.config import Settings
from opsconsole.core.catalog import Template, template_from_dict
from opsconsole.core.clock import Clock
from opsconsole.core.errors import OpsError, StoreUnavailable
from opsconsole.core.files import remove_tree
from opsconsole.core.secrets import Redactor, SecretBox
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database
from opsconsole.engine.context import RunContext, RunResult, Stop
from opsconsole.engine.logsink import LogSink
from opsconsole.engine.outage import StoppedWaiting, wait_out
from opsconsole.engine.runners.base import Runner, RunSpec
from opsconsole.engine.runners.python import PythonRunner
from opsconsole.engine.runners.shell import ShellRunner

log = logging.getLogger("opsconsole.worker")


def _ansible() -> Runner:
    # imported on first use: a worker that never runs a playbook never loads it
    from opsconsole.engine.runners.ansible import AnsibleRunner

    return AnsibleRunner()


def _terraform() -> Runner:
    from opsconsole.engine.runners.terraform import TerraformRunner

    return TerraformRunner()


RUNNERS: dict[str, Callable[[], Runner]] = {
    "shell": ShellRunner,
    "python": PythonRunner,
    "ansible": _ansible,
    "terraform": _terraform,
}

SINK_CLOSE_SLICE = 5.0
"""Seconds one attempt to land a run's last log lines waits before the pool looks again."""


@dataclass
class Run:
    """One attempt in progress on a slot."""

    job_id: str
    attempt: int
    row: dict[str, Any]
    ctx: RunContext | None = None
    sink: LogSink | None = None
    redactor: Redactor = field(default_factory=Redactor)
    stop: Stop = field(default_factory=Stop)
    """Why the run is being stopped; the context's, created before it so a cancel is never lost."""
    thread: threading.Thread | None = None
    """The slot thread running it (set when it starts)."""
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    """Set when the runner returned: from then on nobody may abandon this run."""
    abandoned: bool = False
    """Recorded as abandoned by the pool: its late result must change nothing."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Taken to set ``done`` or ``abandoned``: exactly one of the two ever happens."""

    def finish(self) -> bool:
        """Mark the runner returned; False if the pool abandoned the run first."""
        with self.lock:
            self.done.set()
            return not self.abandoned

    def abandon(self) -> bool:
        """Mark the run abandoned; False if the runner returned first."""
        with self.lock:
            if self.done.is_set() or self.abandoned:
                return False
            self.abandoned = True
            return True


@dataclass(frozen=True)
class AttemptEnv:
    """What every attempt of one pool shares."""

    db: Database
    settings: Settings
    clock: Clock
    box: Callable[[], SecretBox]
    stopping: threading.Event
    abandon: Callable[[Run], None]
    """Called (on a timer thread) when an in-thread handler ignored its stop for the grace."""
    refusal: Callable[[str], str | None] = lambda _template: None
    """Why the catalog refuses jobs of a template now (two files declare its name), or None."""
    gate: Callable[[dict[str, Any]], str | None] = lambda _row: None
    """Why a claimed gated job may not run (no matching approval), or None. When it refuses,
    the job is already back in ``awaiting_approval`` and its refusal audited."""


def prepare(env: AttemptEnv, run: Run) -> tuple[Template, dict[str, Any]] | RunResult:
    """The template and parameters (secrets opened) of a claimed row, or why it cannot run.

    The gate's check and the secrets' key read the store. A store server that is away then
    (down, restarting: ``StoreUnavailable.away``) is not the job's failure: the job is
    claimed and running, so its preparation waits for the store (backing off, as the
    recorder does for an end) until it answers, or until the run is stopped (cancel,
    timeout, the worker's shutdown), which ends the attempt that way. A refusal that waiting
    does not change (a different secrets key) fails the job, saying so.
    """
    try:
        return wait_out(
            lambda: _prepare(env, run),
            run.stop,
            job_id=run.job_id,
            doing="prepare its run",
            done="its run is prepared",
            stopping=env.stopping,
        )
    except StoreUnavailable as exc:  # not away: waiting would not change it
        return RunResult.failed(str(exc), kind="setup")
    except StoppedWaiting as exc:
        return RunResult.stopped(exc.reason, str(exc))


def _prepare(env: AttemptEnv, run: Run) -> tuple[Template, dict[str, Any]] | RunResult:
    """One try of ``prepare``; raises StoreUnavailable for the caller to wait it out."""
    try:
        tpl = template_from_dict(run.row["spec"])
        refused = env.refusal(tpl.name)
        if refused is not None:
            return RunResult.failed(refused, kind="setup")
        gated = env.gate(run.row)
        if gated is not None:
            log.warning("job %s: refused to run: %s", run.job_id, gated)
            # handed back to the gate in the store already: this attempt records nothing
            return RunResult(outcome="lost", message=gated)
        params = {**run.row["params"], **env.box().open(run.row["secret_blob"])}
    except StoreUnavailable:
        raise
    except OpsError as exc:
        return RunResult.failed(str(exc), kind="setup")
    except Exception as exc:
        log.exception("job %s: cannot prepare its run", run.job_id)
        return RunResult.failed(f"internal error: {type(exc).__name__}: {exc}", kind="internal")
    return tpl, params


def execute(env: AttemptEnv, run: Run) -> RunResult:
    """Run the attempt to its end; the run's log lines have landed (or the pool stops)."""
    run.thread = threading.current_thread()
    prepared = prepare(env, run)
    if isinstance(prepared, RunResult):
        return prepared
    tpl, params = prepared
    row, job_id, attempt = run.row, run.job_id, run.attempt
    secret_values = [params[n] for n in tpl.secret_names() if params.get(n) not in (None, "")]
    run.redactor = Redactor(secret_values)
    workdir = Path(tempfile.mkdtemp(prefix=f"opsconsole-{job_id}-"))
    settings = env.settings
    sink = LogSink(
        env.db,
        job_id,
        attempt,
        env.clock,
        run.redactor,
        cap=settings.log_cap,
        line_max=settings.log_line_max,
    )
    run.sink = sink

    def record_pid(pid: int) -> None:
        try:
            job_store.set_pid(env.db, job_id, attempt, pid)
        except OpsError as exc:  # shown by `jobs show` only; the job runs on regardless
            log.warning("job %s: cannot record its pid %s: %s", job_id, pid, exc)

    ctx = RunContext(
        job_id=job_id,
        attempt=attempt,
        template=tpl.name,
        params=params,
        dry_run=bool(row["dry_run"]),
        workdir=workdir,
        log_fn=sink.write,
        progress_fn=sink.progress,
        pid_fn=record_pid,
        stop=run.stop,
        settings=settings,
        db=env.db,
        clock=env.clock,
    )
    run.ctx = ctx
    child_env = {
        "OPSCONSOLE_JOB_ID": job_id,
        "OPSCONSOLE_ATTEMPT": str(attempt),
        "OPSCONSOLE_WORKDIR": str(workdir),
    }
    if ctx.dry_run:
        child_env["OPSCONSOLE_DRY_RUN"] = "1"
    spec = RunSpec(
        template=tpl,
        timeout_s=row["timeout_s"],
        kill_grace=settings.kill_grace,
        line_max=settings.log_line_max,
        catalog_dir=Path(settings.catalog),
        env=child_env,
        row=row,
        db=env.db,
        clock=env.clock,
        settings=settings,
        box=env.box(),
    )
    watchdogs: list[threading.Timer] = []
    if tpl.runner == "python" and not tpl.isolate:
        # a handler on this thread that ignores its stop (cancel, timeout, shutdown) cannot
        # be killed: after the grace period the pool records it and moves on
        def arm() -> None:
            timer = threading.Timer(settings.kill_grace, env.abandon, args=(run,))
            timer.daemon = True
            watchdogs.append(timer)
            if not run.done.is_set():
                timer.start()

        ctx.stop.on_set(arm)
    if env.stopping.is_set():  # claimed just as the pool began to stop
        ctx.stop.set("interrupted", "the worker shut down")
    try:
        factory = RUNNERS.get(tpl.runner)
        if factory is None:
            result = RunResult.failed(f"runner '{tpl.runner}' is not available", kind="setup")
        else:
            result = factory().run(spec, ctx)
    except BaseException as exc:  # SystemExit from a handler included: it ends this job only
        if run.abandoned:
            raise  # the pool interrupted an abandoned thread: let it end
        log.exception("job %s crashed its runner", job_id)
        result = RunResult.failed(f"internal error: {type(exc).__name__}: {exc}", kind="internal")
    finally:
        run.finish()
        for timer in watchdogs:
            timer.cancel()
        left = clear_workdir(workdir)
        if left is not None:
            log.warning("job %s: %s", job_id, left)
            sink.write("meta", f"the job's work dir stays: {left}")
    if result.outcome != "succeeded":
        # the log tells the whole story: whoever reads it sees why the attempt ended
        why = result.message or (result.error or {}).get("message") or ""
        ended = f"attempt {attempt} ended {result.outcome.replace('_', ' ')}"
        sink.write("meta", f"{ended}: {why}" if why else ended)
    land_logs(env, sink)
    return result


def clear_workdir(workdir: Path) -> str | None:
    """Remove a run's work dir; why not, in one line, when something stays.

    Most runs leave it empty: one ``rmdir`` then, not a tree walk.
    """
    try:
        workdir.rmdir()
        return None
    except OSError:
        return remove_tree(workdir)


def land_logs(env: AttemptEnv, sink: LogSink) -> bool:
    """Wait until the run's last lines are in the store: its end must not overtake them."""
    while not sink.close(timeout=SINK_CLOSE_SLICE):
        if env.stopping.is_set():
            return sink.close(timeout=SINK_CLOSE_SLICE)
    return True
