"""Shell runner: an argv list (never a shell string) in its own process group and work dir.

Each item of ``command`` is rendered alone, so a parameter value is one argv item whatever
it contains. The program is a bare name from PATH or a path inside the catalog dir
(``scripts/deploy.sh``), resolved right before exec and exec'd exactly as resolved.
Children inherit the worker's environment minus ``OPSCONSOLE_*`` (the secret key must never
reach a job), plus the template's ``env`` and the job's own variables.
"""

from __future__ import annotations

import os
import sys

from opsconsole.core.catalog import program_path, render, render_argv
from opsconsole.core.errors import InvalidParams
from opsconsole.engine.context import RunContext, RunResult
from opsconsole.engine.procs import Launcher, ProcOutcome, ProcSpec, Supervisor
from opsconsole.engine.runners.base import MarkerParser, RunSpec

# Room for the supervisor's " … [N bytes truncated]" marker, so the log sink, which caps a
# line at ``line_max`` characters, never cuts it off and reports the marker as the loss.
_MARKER_ROOM = 48


def child_env(spec: RunSpec, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}
    env.update(extra)
    env.update(spec.env)
    return env


def outcome_of(out: ProcOutcome, parser: MarkerParser, spec: RunSpec, ctx: RunContext) -> RunResult:
    """One place that maps a child's exit to a run result (shell and isolated handlers)."""
    if out.reason != "exited":
        msg = ctx.stop.message or out.reason.replace("_", " ")
        return RunResult.stopped(
            out.reason,
            msg,
            result=parser.result if parser.has_result else None,
            exit_code=out.exit_code,
            detail={"signal": out.signal},
        )
    code = out.exit_code
    result = parser.result if parser.has_result else None
    if code == 0 and parser.outcome in (None, "succeeded"):
        return RunResult(outcome="succeeded", exit_code=0, result=result)
    if parser.outcome == "partial" or (
        code is not None and code in spec.template.partial_exit_codes
    ):
        return RunResult(
            outcome="partial",
            exit_code=code,
            result=result,
            message=parser.message or f"partial success (exit code {code})",
        )
    if code is None:
        message, detail = f"killed by signal {out.signal}", {"signal": out.signal}
    else:
        message, detail = parser.message or f"exit code {code}", {"exit_code": code}
    error = parser.error or {"message": message, "kind": "exit_code", "detail": detail}
    return RunResult(outcome="failed", exit_code=code, result=result, error=error, message=message)


class ShellRunner:
    def run(self, spec: RunSpec, ctx: RunContext) -> RunResult:
        tpl = spec.template
        assert tpl.command is not None
        argv = render_argv(tpl.command, ctx.params)
        try:
            # checked again here: links in the catalog may have changed since it was loaded
            program = program_path(argv[0], spec.catalog_dir)
        except InvalidParams as exc:
            return RunResult.failed(f"not started: {exc}", kind="program")
        if program is not None:
            argv[0] = program
        extra = {k: render(v, ctx.params) for k, v in tpl.env.items()}
        env = child_env(spec, extra)
        return supervise(argv, env, spec, ctx, stdin=None)


def supervise(
    argv: list[str],
    env: dict[str, str],
    spec: RunSpec,
    ctx: RunContext,
    *,
    stdin: bytes | None,
    launcher: Launcher | None = None,
) -> RunResult:
    parser = MarkerParser(ctx)
    proc = Supervisor(
        ProcSpec(
            argv=argv,
            env=env,
            cwd=str(ctx.workdir),
            marker=f"{ctx.job_id}.{ctx.attempt}",
            stdin_data=stdin,
            max_line_bytes=max(spec.line_max - _MARKER_ROOM, 1),
        ),
        parser.line,
        launcher=launcher,
    )
    try:
        proc.start()
    except OSError as exc:
        what = exc.strerror or type(exc).__name__
        return RunResult.failed(f"cannot start {argv[0]!r}: {what}", kind="spawn")
    if proc.pid is not None:
        ctx.pid_fn(proc.pid)
    out = proc.wait(cancelled=ctx.stop.is_set, deadline=spec.deadline(), grace=spec.kill_grace)
    if out.reason == "timed_out":
        ctx.stop.set("timed_out", f"timed out after {spec.timeout_s:g}s")
    elif out.reason == "cancelled":
        # the stop's reason says why: an operator's cancel, a timeout, a shutdown
        out = ProcOutcome(out.exit_code, out.signal, ctx.stop.reason or "cancelled", out.pid)
    return outcome_of(out, parser, spec, ctx)


def python_argv() -> list[str]:
    return [sys.executable, "-m", "opsconsole.engine.runners.child"]
