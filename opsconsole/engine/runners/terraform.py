"""Terraform runner: plan to a saved plan file, park for its approval, apply exactly that plan.

The only place that decides what a Terraform attempt does. In phase ``plan`` it copies the
module into the instance's directory (``core/instances.py``), inits and plans to a file, and
stores the plan (summary from ``show -json``, sha256 of the file). Then: ``plan_only`` or a
dry run ends there; a template with ``approval:`` parks the job (``parked``: awaiting approval
of that plan, whose hash is in the approval digest); without one it applies at once. In phase
``apply`` it applies the approved plan file; a stale plan is refused and planned again.
Every variable reaches Terraform as ``TF_VAR_x`` in its environment, never argv or a file.

With a shared store (PostgreSQL) the state is the store's (``core/store/tfstate.py``: one
Terraform workspace per instance, in the ``pg`` backend), and the plan file is also kept in
the store, sealed with the secret key: the apply may run on any host, which writes the plan
back to a private file, checks its sha256 against the approved hash, and applies it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from opsconsole.core import instances
from opsconsole.core.catalog import render
from opsconsole.core.errors import OpsError
from opsconsole.core.secrets import Redactor
from opsconsole.core.store import instances as instance_store
from opsconsole.core.store import plans as plan_store
from opsconsole.core.store import tfstate
from opsconsole.engine.context import RunContext, RunResult
from opsconsole.engine.outage import StoppedWaiting, wait_out
from opsconsole.engine.runners.base import RunSpec
from opsconsole.engine.runners.terraform_engine import (
    Engine,
    EngineMissing,
    find_engine,
    quiet_env,
    write_cli_config,
)
from opsconsole.engine.runners.terraform_proc import DOCUMENT_BYTES, Ended, run_command
from opsconsole.engine.runners.terraform_ui import UiReader, registry_problem

T = TypeVar("T")

FLAG = object()
"""A flag without a value (python-terraform's ``IsFlagged``, imported only when used)."""

ACTIONS = {
    ("create",): "create",
    ("update",): "update",
    ("delete",): "delete",
    ("read",): "read",
    ("no-op",): "no-op",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
}


class Refused(Exception):
    """The attempt cannot go on; its message is the one line the job ends with."""

    def __init__(self, message: str, kind: str = "terraform") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Job:
    """One attempt's fixed facts."""

    spec: RunSpec
    ctx: RunContext
    engine: Engine
    template: str
    name: str
    ws: Path
    env: dict[str, str]
    deadline: float | None
    workspace: str | None = None
    """The instance's Terraform workspace when its state is the store's (else local state)."""


class TerraformRunner:
    def run(self, spec: RunSpec, ctx: RunContext) -> RunResult:
        try:
            job = self._setup(spec, ctx)
            return self._run(job)
        except Stopped as exc:
            return RunResult.stopped(exc.kind, ctx.stop.message or exc.kind.replace("_", " "))
        except StoppedWaiting as exc:
            return RunResult.stopped(exc.reason, str(exc))
        except Refused as exc:
            return RunResult.failed(str(exc), kind=exc.kind)
        except OpsError as exc:
            return RunResult.failed(str(exc), kind="setup")
        except OSError as exc:
            return RunResult.failed(f"cannot run Terraform: {exc.strerror or exc}", kind="spawn")

    # -- setting up ------------------------------------------------------------------------

    def _setup(self, spec: RunSpec, ctx: RunContext) -> Job:
        tpl, settings = spec.template, spec.settings
        tf = tpl.terraform
        assert tf is not None and settings is not None and spec.db is not None
        try:
            engine = find_engine(settings.terraform)
        except EngineMissing as exc:
            raise Refused(str(exc), "setup") from None
        public = dict((spec.row or {}).get("params") or ctx.params)
        name = instances.instance_name(tf, public)
        ws = instances.workspace(Path(settings.home), tpl.name, name)
        cli_config = write_cli_config(Path(settings.home))
        tf_vars = {f"TF_VAR_{var}": render(text, ctx.params) for var, text in tf.vars.items()}
        extra = {**tf_vars, **spec.env}
        workspace = None
        if tfstate.shared(spec.db):
            workspace = tfstate.workspace(tpl.name, name)
            backend = tfstate.backend_env(spec.db)
            extra.update(backend, TF_WORKSPACE=workspace)
            ctx = self._masking(ctx, [backend["PG_CONN_STR"], spec.db.url.password])
        env = quiet_env(extra, cli_config)
        return Job(spec, ctx, engine, tpl.name, name, ws, env, spec.deadline(), workspace)

    @staticmethod
    def _masking(ctx: RunContext, secrets: list[str | None]) -> RunContext:
        """The context whose log masks the store's credentials: Terraform never prints them,
        but a provisioner inherits Terraform's environment and may."""
        redactor = Redactor([s for s in secrets if s])
        if not redactor:
            return ctx
        write = ctx.log_fn
        return dataclasses.replace(
            ctx, log_fn=lambda stream, text: write(stream, redactor.text(text))
        )

    def _run(self, job: Job) -> RunResult:
        spec, ctx = job.spec, job.ctx
        tf = spec.template.terraform
        assert tf is not None and spec.db is not None
        problem = instances.problem(job.ws)
        if problem is None and job.workspace is not None:
            problem = instances.local_state_problem(job.ws, job.workspace)
        if problem is not None:
            self._upsert(job, problem=problem, status="errored")
            raise Refused(f"instance '{job.name}' is blocked: {problem}", "errored_state")
        phase = (spec.row or {}).get("phase") or "plan"
        if phase == "apply":
            saved = self._stored(job, lambda: plan_store.latest(spec.db, ctx.job_id))
            if saved is not None and saved["status"] == "pending":
                if instances.plan_is_here(job.ws, saved["file"]):
                    return self._apply(job, saved, Path(saved["file"]))
                restored = self._restore(job, saved)
                if restored is not None:
                    try:
                        return self._apply(job, saved, restored)
                    finally:
                        restored.unlink(missing_ok=True)
            ctx.log_fn("meta", "no saved plan to apply: planning again")
        return self._plan_then(job)

    def _restore(self, job: Job, saved: Any) -> Path | None:
        """The plan another host planned, written back here from its sealed copy in the store
        (after setting up this host's directory for the instance); None when there is none."""
        spec = job.spec
        if job.workspace is None or spec.box is None:
            return None
        assert spec.db is not None
        sealed = self._stored(job, lambda: plan_store.content(spec.db, saved["id"]))
        if sealed is None:
            return None
        data = spec.box.open_bytes(sealed)
        self._set_up(job)
        job.ctx.log_fn(
            "meta", f"plan {saved['hash'][:12]} was planned on another host: taken from the store"
        )
        return instances.restored_plan(job.ws, data)

    # -- plan --------------------------------------------------------------------------------

    def _set_up(self, job: Job) -> None:
        """The instance's directory on this host: a fresh module copy, initialised, and with
        a shared state its workspace selected (created on the instance's first plan)."""
        spec = job.spec
        tf = spec.template.terraform
        assert tf is not None and spec.settings is not None
        module = instances.module_source(spec.catalog_dir, tf.module)
        home = Path(spec.settings.home)
        instances.prepare(home, job.template, job.name, module, shared=job.workspace is not None)
        job.ctx.progress(None, "init")
        self._init(job)
        if job.workspace is not None:
            self._select_workspace(job, job.workspace)

    def _plan_then(self, job: Job) -> RunResult:
        spec, ctx = job.spec, job.ctx
        tf = spec.template.terraform
        assert tf is not None
        self._set_up(job)
        saved = self._plan(job, tf.destroy)
        summary = saved["summary"]
        counts = self._counts(summary)
        if tf.plan_only or ctx.dry_run:
            return RunResult(
                outcome="succeeded",
                result={"plan": summary, "instance": job.name, "applied": False},
                message=f"plan only: {counts}",
            )
        if spec.template.approval is not None:
            return RunResult(
                outcome="parked",
                result={"plan": summary, "instance": job.name, "plan_hash": saved["hash"]},
                message=f"planned ({counts}): awaiting approval of plan {saved['hash'][:12]}",
            )
        return self._apply(job, saved, Path(saved["file"]))

    def _init(self, job: Job) -> None:
        reader = UiReader(job.ctx.log_fn, self._progress(job), counting=False)
        lines: list[str] = []

        def on_line(stream: str, text: str) -> None:
            lines.append(text)
            reader.line(stream, text)

        args = ["init", "-input=false", "-no-color", "-lock-timeout=0s"]
        end = self._command(job, args, on_line, unselected=True)
        self._stopped(end)
        if end.outcome.exit_code != 0:
            why = registry_problem(reader.state.errors, " ".join(lines[-40:]))
            error = next((ln.strip() for ln in lines if ln.strip().startswith("Error:")), "")
            raise Refused(why or f"terraform init failed: {error or 'see the log'}", "init")

    def _select_workspace(self, job: Job, workspace: str) -> None:
        """Select the instance's workspace in the store, creating it on its first plan (an
        init cannot: Terraform refuses to init into a workspace the backend does not have)."""
        lines: list[str] = []

        def on_line(stream: str, text: str) -> None:
            if text.strip():
                lines.append(text.strip())
                job.ctx.log_fn("err" if stream == "stderr" else "out", text)

        args = ["workspace", "select", "-or-create=true", "-no-color", workspace]
        end = self._command(job, args, on_line, unselected=True)
        self._stopped(end)
        if end.outcome.exit_code != 0:
            error = next((ln for ln in lines if ln.startswith("Error:")), "see the log")
            raise Refused(f"terraform workspace {workspace} cannot be selected: {error}", "init")

    def _plan(self, job: Job, destroy: bool) -> Any:
        spec, ctx = job.spec, job.ctx
        assert spec.db is not None and spec.clock is not None
        plan_path = instances.plan_file(job.ws, ctx.job_id, ctx.attempt)
        ctx.progress(None, "plan")
        reader = UiReader(ctx.log_fn, self._progress(job), counting=False)
        args = self._args("plan", out=str(plan_path), destroy=FLAG if destroy else None, json=FLAG)
        end = self._command(job, args, reader.line)
        self._stopped(end)
        if end.outcome.exit_code != 0:
            why = registry_problem(reader.state.errors)
            raise Refused(why or f"terraform plan failed: {reader.first_error or 'see log'}")
        summary = self._summary(job, plan_path)
        data = plan_path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        sealed = None
        if job.workspace is not None:  # any host may apply it: the store keeps it, sealed
            if spec.box is None:
                raise Refused("no secret key to seal the saved plan with", "setup")
            sealed = spec.box.seal_bytes(data)
        row = spec.row or {}
        now = spec.clock.now()
        self._stored(
            job,
            lambda: plan_store.add(
                spec.db,
                job_id=ctx.job_id,
                attempt=ctx.attempt,
                round_=int(row.get("gate_round") or 0) + 1,
                template=job.template,
                instance=job.name,
                hash_=digest,
                summary=summary,
                file=str(plan_path),
                now=now,
                content=sealed,
            ),
        )
        self._upsert(job)
        ctx.log_fn("meta", f"plan {digest[:12]} saved: {self._counts(summary)}")
        return self._stored(job, lambda: plan_store.latest(spec.db, ctx.job_id))

    def _summary(self, job: Job, plan_path: Path) -> dict[str, Any]:
        chunks: list[str] = []

        def on_line(stream: str, text: str) -> None:
            if stream == "stdout":
                chunks.append(text)
            elif text.strip():
                job.ctx.log_fn("err", text)

        end = self._command(
            job,
            self._args("show", str(plan_path), json=FLAG, changes=False),
            on_line,
            DOCUMENT_BYTES,
        )
        self._stopped(end)
        try:
            shown = json.loads("\n".join(chunks))
        except ValueError:
            shown = None
        if end.outcome.exit_code != 0 or not isinstance(shown, dict):
            raise Refused("the saved plan cannot be read back (terraform show -json failed)")
        return plan_summary(shown)

    # -- apply -------------------------------------------------------------------------------

    def _apply(self, job: Job, saved: Any, plan_path: Path) -> RunResult:
        spec, ctx = job.spec, job.ctx
        assert spec.db is not None and spec.clock is not None
        if hashlib.sha256(plan_path.read_bytes()).hexdigest() != saved["hash"]:
            self._set_status(job, saved, "failed")
            raise Refused("the saved plan file changed since it was planned: not applied")
        tf = spec.template.terraform
        assert tf is not None
        self._upsert(job, status="destroying" if tf.destroy else "applying")
        ctx.progress(0, "apply")
        reader = UiReader(ctx.log_fn, self._progress(job), counting=True)
        for item in saved["summary"].get("resources", []):
            if item.get("action") not in ("no-op", "read"):
                reader.state.planned.add(item["address"])
        end = self._command(job, self._args("apply", str(plan_path), json=FLAG), reader.line)
        state, problem = self._state(job)
        if reader.state.stale:
            self._set_status(job, saved, "stale")
            ctx.log_fn("meta", "the saved plan is stale (the state changed since): planning again")
            if spec.template.approval is None:
                raise Refused("the saved plan is stale: the state changed since it was planned")
            return self._plan_then(job)
        # an apply whose state cannot be read back did not end well, whatever the exit code
        ok = end.outcome.exit_code == 0 and end.stopped is None and problem is None
        self._set_status(job, saved, "applied" if ok else "failed")
        status = ("destroyed" if tf.destroy else "applied") if ok else "errored"
        self._upsert(job, status=status, state=state, plan_hash=saved["hash"], problem=problem)
        result = {
            "instance": job.name,
            "plan_hash": saved["hash"],
            "applied": sorted(reader.state.done),
            "failed": sorted(reader.state.failed),
            "resources": state["resources"],
            "outputs": state["outputs"],
            "serial": state["serial"],
        }
        if end.stopped is not None:
            return RunResult.stopped(
                end.stopped, ctx.stop.message or end.stopped.replace("_", " "), result=result
            )
        if ok:
            return RunResult(outcome="succeeded", exit_code=0, result=result)
        applied, planned = len(reader.state.done), len(reader.state.planned)
        if end.outcome.exit_code == 0:  # Terraform finished, but its state is unreadable
            message = f"applied {applied} of {planned} change(s), but the instance {problem}"
        else:
            why = reader.first_error or f"exit code {end.outcome.exit_code}"
            message = f"apply failed after {applied} of {planned} change(s): {why}"
            if problem:
                message += f"; {problem}"
        return RunResult(
            outcome="failed",
            exit_code=end.outcome.exit_code,
            result=result,
            error={"message": message, "kind": "apply", "detail": result},
            message=message,
        )

    def _state(self, job: Job) -> tuple[dict[str, Any], str | None]:
        """The instance's state summary after an apply, and why it cannot be applied next
        (None when it can): from the local state file, or the store's copy."""
        problem = instances.problem(job.ws)
        if job.workspace is None:
            return instances.summary_of_state(instances.read_state(job.ws)), problem
        assert job.spec.db is not None
        db = job.spec.db
        try:
            state = self._stored(job, lambda: tfstate.read_state(db, job.template, job.name))
        except tfstate.StateUnreadable as exc:
            why = f"its Terraform state in the store (workspace {job.workspace}) cannot be read"
            return instances.summary_of_state(None), problem or f"{why} ({exc})"
        return instances.summary_of_state(state), problem

    # -- helpers -----------------------------------------------------------------------------

    def _args(self, command: str, *args: str, changes: bool = True, **options: Any) -> list[str]:
        """Terraform's argv (python-terraform builds it; never with ``var=``, so variables
        reach neither argv nor its temp ``.tfvars.json``). ``changes``: a command that may
        change or lock the state (no prompt, never wait for someone else's lock)."""
        try:
            from python_terraform import IsFlagged, Terraform
        except ImportError:
            raise Refused(
                "python-terraform is not installed (pip install 'opsconsole[terraform]')", "setup"
            ) from None
        base = Terraform(terraform_bin_path="terraform", is_env_vars_included=False)
        options = {k: IsFlagged if v is FLAG else v for k, v in options.items()}
        if changes:
            options = {"input": False, "lock_timeout": "0s", **options}
        argv = base.generate_cmd_string(command, *args, no_color=IsFlagged, **options)
        return argv[1:]

    def _command(
        self,
        job: Job,
        args: list[str],
        on_line: Any,
        line_max: int | None = None,
        *,
        unselected: bool = False,
    ) -> Ended:
        """Run one command for the job. ``unselected``: without the instance's workspace in
        the environment (init and the workspace's own selection run before it exists)."""
        spec = job.spec
        env = job.env
        if unselected and job.workspace is not None:
            env = {k: v for k, v in env.items() if k != "TF_WORKSPACE"}
        return run_command(
            job.engine.command(*args),
            env,
            str(job.ws),
            job.ctx,
            on_line,
            deadline=job.deadline,
            kill_grace=spec.kill_grace,
            line_max=line_max or max(spec.line_max - 48, 1),
            timeout_s=spec.timeout_s,
        )

    @staticmethod
    def _stopped(end: Ended) -> None:
        if end.stopped is not None:
            raise Stopped(end.stopped)

    @staticmethod
    def _progress(job: Job) -> Any:
        return job.ctx.progress

    @staticmethod
    def _counts(summary: dict[str, Any]) -> str:
        return (
            f"{summary['add']} to add, {summary['change']} to change, "
            f"{summary['destroy']} to destroy"
        )

    def _upsert(
        self,
        job: Job,
        *,
        status: str | None = None,
        state: dict[str, Any] | None = None,
        plan_hash: str | None = None,
        problem: str | None = None,
    ) -> None:
        spec = job.spec
        assert spec.db is not None and spec.clock is not None
        values: dict[str, Any] = {"last_job": job.ctx.job_id, "problem": problem}
        if status is not None:
            values["status"] = status
        if state is not None:
            values.update(
                serial=state["serial"], outputs=state["outputs"], resources=state["resources"]
            )
        if plan_hash is not None:
            values["plan_hash"] = plan_hash
        now = spec.clock.now()
        self._stored(
            job, lambda: instance_store.upsert(spec.db, job.template, job.name, now, **values)
        )

    def _set_status(self, job: Job, saved: Any, status: str) -> None:
        spec = job.spec
        assert spec.db is not None and spec.clock is not None
        now = spec.clock.now()
        self._stored(job, lambda: plan_store.set_status(spec.db, saved["id"], status, now))

    @staticmethod
    def _stored(job: Job, call: Callable[[], T]) -> T:
        """The attempt's own store work (its plans, the instance's record and state) with a
        store server that is away waited out (``outage.wait_out``), not taken for the job's
        failure: an apply that changed the infrastructure must still be recorded as such,
        and its plan marked applied, or a retry would try it again."""
        return wait_out(
            call,
            job.ctx.stop,
            job_id=job.ctx.job_id,
            doing="read or write its plan or instance",
            done="its plan and instance work goes on",
        )


class Stopped(Refused):
    """The attempt was stopped (cancel, timeout, shutdown) between or during commands."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, reason)


def plan_summary(shown: dict[str, Any]) -> dict[str, Any]:
    """The stored plan summary (shape: ``core/store/plans.py``) from ``show -json PLAN``."""
    counts = {"add": 0, "change": 0, "destroy": 0, "replace": 0}
    resources = []
    for rc in shown.get("resource_changes") or []:
        actions = tuple((rc.get("change") or {}).get("actions") or ())
        action = ACTIONS.get(actions, "-".join(actions) or "no-op")
        resources.append({"address": str(rc.get("address", "")), "action": action})
        if action == "create":
            counts["add"] += 1
        elif action == "update":
            counts["change"] += 1
        elif action == "delete":
            counts["destroy"] += 1
        elif action == "replace":
            counts["replace"] += 1
            counts["add"] += 1
            counts["destroy"] += 1
    outputs = {}
    for name, oc in (shown.get("output_changes") or {}).items():
        actions = tuple(oc.get("actions") or ())
        outputs[name] = {
            "action": ACTIONS.get(actions, "-".join(actions) or "no-op"),
            "sensitive": bool(oc.get("after_sensitive") or oc.get("before_sensitive")),
        }
    return {**counts, "resources": resources, "outputs": outputs}
