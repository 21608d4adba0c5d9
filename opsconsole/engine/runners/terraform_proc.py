"""One Terraform command under our supervision, stopped the way Terraform needs to be stopped.

The only place that starts a Terraform process for a job. Each command runs in its own session
with the job's marker (the worker's ``Supervisor``), its output read live line by line. A stop
(cancel, timeout, shutdown) sends ONE SIGINT to Terraform, which then stops its provisioners,
saves the state and releases its lock; processes its provisioners started are sent TERM soon
after (a ``local-exec`` child outlives Terraform's interrupt and would hold it), and only after
a generous grace is the whole tree killed. Never ``force-unlock``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from opsconsole.engine.context import RunContext
from opsconsole.engine.procs import ProcOutcome, ProcSpec, Supervisor, find_marked

STOP_GRACE = 60.0
"""Seconds Terraform gets after its SIGINT to save state and release its lock."""
CHILD_PATIENCE = 1.0
"""Seconds after the SIGINT before what Terraform's provisioners started is sent TERM."""
DOCUMENT_BYTES = 256 * 1024 * 1024
"""Line limit of a command whose output is one JSON document (``show -json``)."""


@dataclass
class Ended:
    outcome: ProcOutcome
    stopped: str | None
    """Why it was stopped (the stop's reason), or None when it ended by itself."""


class Interrupter:
    """The Supervisor's ``cancelled`` poll: SIGINT first, TERM the provisioners' children,
    and say "kill it all" only once the grace is over."""

    def __init__(
        self, ctx: RunContext, pid: int, marker: str, deadline: float | None, grace: float
    ) -> None:
        self.ctx, self.pid, self.marker = ctx, pid, marker
        self.deadline, self.grace = deadline, grace
        self.sent: float | None = None
        self.timeout_message = "timed out"
        self.children_told = False

    def __call__(self) -> bool:
        now = time.monotonic()
        stop = self.ctx.stop
        if not stop.is_set() and self.deadline is not None and now >= self.deadline:
            stop.set("timed_out", self.timeout_message)
        if not stop.is_set():
            return False
        if self.sent is None:
            self.sent = now
            self.ctx.log_fn(
                "meta",
                "stopping Terraform: interrupt sent, waiting for it to "
                "save its state and release its lock",
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)
            return False
        if not self.children_told and now - self.sent >= CHILD_PATIENCE:
            self.children_told = True
            for pid in find_marked(self.marker):
                if pid != self.pid:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGTERM)
        return now - self.sent >= self.grace


def run_command(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    ctx: RunContext,
    on_line: Callable[[str, str], None],
    *,
    deadline: float | None,
    kill_grace: float,
    line_max: int,
    timeout_s: float | None = None,
) -> Ended:
    """Run one Terraform command to its end (OSError when it cannot start)."""
    marker = f"{ctx.job_id}.{ctx.attempt}"
    proc = Supervisor(
        ProcSpec(argv=argv, env=env, cwd=cwd, marker=marker, max_line_bytes=line_max), on_line
    )
    pid = proc.start()
    ctx.pid_fn(pid)
    stopper = Interrupter(ctx, pid, marker, deadline, max(STOP_GRACE, kill_grace))
    if timeout_s is not None:
        stopper.timeout_message = f"timed out after {timeout_s:g}s"
    out = proc.wait(cancelled=stopper, grace=kill_grace)
    stopped = ctx.stop.reason if (ctx.stop.is_set() or stopper.sent is not None) else None
    return Ended(out, stopped)
