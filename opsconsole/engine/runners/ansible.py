"""Ansible runner: a playbook or an ad-hoc module through ansible-runner, in a child of our own.

The only place that turns an ``AnsibleSpec`` and a job's parameters into a run. Each attempt
gets a fresh private data dir (0700, under ``$OPSCONSOLE_HOME/run``, removed after: ansible-runner
reads stale ``env/*`` files, so one is never reused); the child
(``runners/ansible_child.py``) runs ansible-runner under the Supervisor, so cancel and timeout
stop ansible-playbook and every worker it ``setsid()``'d. Its stdout becomes the job's log, its
``::ansible`` events the progress, the hosts grid (``core/store/hosts``, written in batches)
and the per-host recap.

User values reach Ansible as data only: the extravars go to a YAML file we write with every
string tagged ``!unsafe`` (Ansible never templates them) and the child deletes it as soon as
Ansible has read it. Secrets (secret parameters, the SSH key, the become password) travel on
the child's stdin, never argv or the environment, which ansible-runner copies into
``artifacts/<id>/command``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets as pysecrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

from opsconsole.core.catalog import AnsibleSpec, ParamType, render
from opsconsole.core.catalog.paths import is_inside, real, show_path
from opsconsole.core.catalog.render import PLACEHOLDER_RE
from opsconsole.core.errors import InvalidParams, OpsError
from opsconsole.core.files import remove_tree
from opsconsole.core.secrets import Redactor
from opsconsole.core.store import hosts as host_store
from opsconsole.engine.context import RunContext, RunResult
from opsconsole.engine.procs import ProcOutcome, ProcSpec, Supervisor
from opsconsole.engine.runners.base import MarkerParser, RunSpec

log = logging.getLogger("opsconsole.worker")

INSTALL_HINT = "pip install 'opsconsole[ansible]'"
FLUSH_EVERY = 0.25
"""Seconds between hosts-grid writes on a busy run: one transaction per batch, not per event."""
FINAL_FLUSH_S = 10.0
"""How long the last grid cells are retried against a failing store before it is reported."""

_ENV_KEEP = ("HOME", "USER", "LOGNAME", "LANG", "TZ")
_LIMIT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:,*!&[]")
_MARKER_ROOM = 48
_FAILED = ("failed", "unreachable")


class SetupError(Exception):
    """The run cannot start: one line for the job's error."""


# -- building the run ----------------------------------------------------------------------


def ansible_bin(name: str) -> Path:
    """``ansible-playbook``/``ansible`` beside the interpreter that runs us (our venv)."""
    return Path(sys.executable).parent / name


def catalog_file(path: str, catalog_dir: Path, what: str) -> str:
    """A file the template names, resolved; it must exist inside the catalog."""
    root = real(catalog_dir)
    if os.path.isabs(path) or ".." in Path(path).parts:
        raise SetupError(f"{what} '{show_path(path)}' must be a relative path inside the catalog")
    resolved = real(os.path.join(root, path))
    if not is_inside(resolved, root):
        raise SetupError(
            f"{what} '{show_path(path)}' resolves to {show_path(resolved)}, outside the "
            f"catalog {show_path(root)} (links must point inside it too)"
        )
    if not os.path.exists(resolved):
        raise SetupError(f"{what} '{show_path(path)}' not found in the catalog {show_path(root)}")
    return resolved


def unsafe_yaml(values: dict[str, Any]) -> str:
    """Variables as YAML whose every string is ``!unsafe``: Ansible never templates them.

    A JSON string is a valid YAML double-quoted scalar, so ``json.dumps`` does the quoting.
    """

    def scalar(value: Any) -> str:
        if isinstance(value, bool) or value is None or isinstance(value, int | float):
            return json.dumps(value)
        if isinstance(value, list | tuple):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        return "!unsafe " + json.dumps(str(value))

    if not values:
        return "{}\n"  # Ansible refuses an empty vars file
    return "".join(f"{name}: {scalar(value)}\n" for name, value in values.items())


def extravars(spec: AnsibleSpec, params: dict[str, Any]) -> dict[str, Any]:
    """The template's extravars filled from the parameters; a lone placeholder keeps its type."""
    out: dict[str, Any] = {}
    for name, text in spec.extravars.items():
        whole = PLACEHOLDER_RE.fullmatch(text.strip())
        if whole is not None:
            if whole.group(1) not in params:
                raise SetupError(f"extravars.{name}: unknown placeholder '{text}'")
            out[name] = params[whole.group(1)]
        else:
            try:
                out[name] = render(text, params)
            except InvalidParams as exc:
                raise SetupError(f"extravars.{name}: {exc}") from None
    return out


def inventory_data(spec: AnsibleSpec, run: RunSpec, params: dict[str, Any]) -> Any:
    """A path (a file in the catalog) or a mapping to write as the run's inventory."""
    inv = spec.inventory
    name = spec.inventory_param
    if name is not None:
        pspec = run.template.params.get(name)
        if pspec is None or pspec.type is not ParamType.HOSTS:
            raise SetupError(f"inventory: parameter '{name}' must be declared with type: hosts")
        hosts = params.get(name)
        if not hosts:
            raise SetupError(f"missing inventory: parameter '{name}' names no hosts")
        return {"all": {"hosts": {h: None for h in hosts}}}
    if isinstance(inv, str):
        return catalog_file(inv, run.catalog_dir, "inventory")
    if not isinstance(inv, dict) or not inv:
        raise SetupError("missing inventory: the template declares none")
    body = dict(inv["all"]) if "all" in inv else dict(inv)
    if "groups" in body:
        body["children"] = {**(body.get("children") or {}), **body.pop("groups")}
    hosts = body.get("hosts")
    if isinstance(hosts, list):
        body["hosts"] = {str(h): None for h in hosts}
    return {"all": body}


def check_limit(limit: str) -> str:
    if not limit or limit[0] in "@~" or not set(limit) <= _LIMIT_CHARS:
        raise SetupError(f"limit '{show_path(limit)}' is not a host pattern")
    return limit


def private_dir(home: Path, marker: str) -> Path:
    """A fresh 0700 data dir under ``$OPSCONSOLE_HOME/run``: never the system temp dir."""
    run_root = home / "run"
    run_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_root.chmod(0o700)
    path = run_root / f"ansible-{marker}-{pysecrets.token_hex(4)}"
    path.mkdir(mode=0o700)
    for sub in ("tmp", "tmp/local", "tmp/remote", "inventory", "vars", "project"):
        (path / sub).mkdir(mode=0o700)
    return path


def child_env(spec: RunSpec, data_dir: Path) -> dict[str, str]:
    """An allow-list: ansible-runner copies this whole environment into its artifacts."""
    env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
    bindir = str(Path(sys.executable).parent)
    env.update(
        {
            "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
            "LC_ALL": "C.UTF-8",
            "TMPDIR": str(data_dir / "tmp"),
            "ANSIBLE_LOCAL_TEMP": str(data_dir / "tmp" / "local"),
            "ANSIBLE_REMOTE_TMP": str(data_dir / "tmp" / "remote"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=no",
            "ANSIBLE_FORCE_COLOR": "0",
        }
    )
    env.update(spec.env)
    return env


def build(spec: RunSpec, ctx: RunContext, data_dir: Path) -> dict[str, Any]:
    """The child's stdin: ansible-runner's arguments and the secrets it needs."""
    tpl = spec.template
    an = tpl.ansible
    assert an is not None
    if not ansible_bin("ansible-playbook").exists():
        raise SetupError(f"ansible is not installed beside {sys.executable}: {INSTALL_HINT}")
    params = ctx.params
    inv = inventory_data(an, spec, params)
    if isinstance(inv, dict):
        inv_path = data_dir / "inventory" / "hosts.yml"
        inv_path.write_text(json.dumps(inv))
        inventory = str(inv_path)
    else:
        inventory = inv
    vars_path = data_dir / "vars" / "extravars.yml"
    fd = os.open(vars_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(unsafe_yaml(extravars(an, params)))
    cmdline = ["-e", f"@{vars_path}"]
    if ctx.dry_run:
        cmdline += ["--check", "--diff"]
    if an.become:
        cmdline.append("--become")
    job: dict[str, Any] = {"vars_file": str(vars_path)}
    if an.credential is not None:
        try:
            cred = spec.settings.credential(an.credential) if spec.settings else None
            if cred is None:
                raise SetupError(f"credential '{an.credential}': no settings")
            if cred.user:
                cmdline += ["--user", cred.user]
            job["ssh_key"] = cred.resolve("private_key") or None
            become_pw = cred.resolve("become_password")
        except InvalidParams as exc:
            raise SetupError(str(exc)) from None
        if become_pw:
            cmdline.append("--ask-become-pass")
            job["passwords"] = {r"BECOME password.*:\s*?$": become_pw}
    import shlex

    run: dict[str, Any] = {
        "private_data_dir": str(data_dir),
        "inventory": inventory,
        "cmdline": shlex.join(cmdline),
        "limit": check_limit(render(an.limit, params)) if an.limit else None,
        "tags": ",".join(an.tags) or None,
        "skip_tags": ",".join(an.skip_tags) or None,
        "forks": an.forks,
        "verbosity": an.verbosity or None,
        "ident": f"{ctx.job_id}-{ctx.attempt}",
    }
    if an.playbook is not None:
        run["playbook"] = catalog_file(an.playbook, spec.catalog_dir, "playbook")
    else:
        run["module"] = an.module
        run["module_args"] = an.module_args or None
        run["host_pattern"] = "all"
    job["run"] = run
    return job


# -- the event stream ----------------------------------------------------------------------


class GridWriter:
    """Hosts-grid cells, written in batches from a thread of its own.

    Cells wait in memory (the latest per task and host) and go to the store every
    ``FLUSH_EVERY`` seconds and at each task's end, one transaction per batch. A failing write
    keeps its cells for the next try and says so in the job's log: nothing is dropped quietly.
    """

    def __init__(self, spec: RunSpec, ctx: RunContext) -> None:
        self._spec = spec
        self._ctx = ctx
        self._pending: dict[tuple[int, str], dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._urgent = False
        self._closing = False
        self._failing: str | None = None
        self._thread = threading.Thread(
            target=self._loop, name=f"ansible-grid-{ctx.job_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def put(self, cell: dict[str, Any]) -> None:
        key = (cell["seq"], cell["host"])
        with self._cond:
            old = self._pending.get(key)
            if old is not None and old.get("started_at") and not cell.get("started_at"):
                cell = {**cell, "started_at": old["started_at"]}
            self._pending[key] = cell

    def flush_soon(self) -> None:
        with self._cond:
            self._urgent = True
            self._cond.notify()

    def _take(self) -> list[dict[str, Any]]:
        with self._cond:
            cells = list(self._pending.values())
            self._pending.clear()
            self._urgent = False
            return cells

    def _give_back(self, cells: list[dict[str, Any]]) -> None:
        with self._cond:
            for cell in cells:
                self._pending.setdefault((cell["seq"], cell["host"]), cell)

    def _write_once(self) -> bool:
        cells = self._take()
        if not cells or self._spec.db is None:
            return True
        try:
            host_store.record(self._spec.db, self._ctx.job_id, self._ctx.attempt, cells)
        except Exception as exc:  # the store is down or locked: keep the cells, say so once
            self._give_back(cells)
            why = f"{type(exc).__name__}: {exc}"
            if self._failing is None:
                self._ctx.log(f"hosts grid: cannot write cells, retrying: {why}", stream="err")
            self._failing = why
            return False
        if self._failing is not None:
            self._ctx.log("hosts grid: writing again", stream="err")
            self._failing = None
        return True

    def _loop(self) -> None:
        backoff = FLUSH_EVERY
        while True:
            with self._cond:
                if not self._closing and not self._urgent:
                    self._cond.wait(backoff)
                closing = self._closing
            if closing:
                return
            backoff = FLUSH_EVERY if self._write_once() else min(backoff * 2, 2.0)

    def close(self) -> None:
        """Write what is left, retrying a failing store for a while, then report any loss."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        end = time.monotonic() + FINAL_FLUSH_S
        while not self._write_once() and time.monotonic() < end:
            time.sleep(0.2)
        with self._cond:
            lost = len(self._pending)
        if lost:
            self._ctx.log(
                f"hosts grid: {lost} cells could not be written: {self._failing}", stream="err"
            )


class Events:
    """Turns the child's ``::ansible`` events into progress, grid cells and the recap."""

    def __init__(self, spec: RunSpec, ctx: RunContext, redactor: Redactor) -> None:
        self.ctx = ctx
        self.grid = GridWriter(spec, ctx)
        self.redact = redactor.text
        self.clock = spec.clock
        self.seq: dict[str, int] = {}
        self.task_names: dict[int, str] = {}
        self.play = ""
        self.seen = 0
        self.done = 0
        self.stats: dict[str, Any] | None = None
        self.results: dict[str, dict[str, int]] = {}
        self.end: dict[str, Any] | None = None
        self.started = False
        self._lock = threading.Lock()

    def now(self) -> Any:
        return self.clock.now() if self.clock is not None else None

    def handle(self, event: dict[str, Any]) -> None:
        with self._lock:
            kind = event.get("e")
            if kind == "start":
                self.started = True
            elif kind == "play":
                self.play = str(event.get("play") or "")
            elif kind == "task":
                self._task(event)
            elif kind == "host":
                self._host(event)
            elif kind == "stats":
                self.stats = event
                self.done = self.seen
                self.ctx.progress(100, "recap")
                self.grid.flush_soon()
            elif kind == "end":
                self.end = event

    def _seq_of(self, uuid: str, name: str) -> int:
        seq = self.seq.get(uuid)
        if seq is None:
            seq = len(self.seq)
            self.seq[uuid] = seq
            self.task_names[seq] = name
        return seq

    def _task(self, event: dict[str, Any]) -> None:
        name = self.redact(str(event.get("task") or ""))
        self._seq_of(str(event.get("task_uuid") or name), name)
        if self.seen:
            self.done += 1  # the task before this one is over on every host
            self.grid.flush_soon()
        self.seen += 1
        self.ctx.progress(100 * self.done / self.seen, name or None)

    def _host(self, event: dict[str, Any]) -> None:
        name = self.redact(str(event.get("task") or ""))
        seq = self._seq_of(str(event.get("task_uuid") or name), name)
        host, status = str(event.get("host") or ""), str(event["status"])
        cell: dict[str, Any] = {
            "seq": seq,
            "host": host,
            "play": self.redact(str(event.get("play") or self.play)),
            "task": name,
            "status": status,
            "msg": self.redact(str(event.get("msg") or "")),
        }
        if status == "running":
            cell["started_at"] = self.now()
        else:
            cell["ended_at"] = self.now()
            counts = self.results.setdefault(host, {})
            counts[status] = counts.get(status, 0) + 1
        self.grid.put(cell)

    def recap(self) -> dict[str, dict[str, int]]:
        """Per host: ok, changed, failed, unreachable, skipped, rescued, ignored."""
        if self.stats is not None:
            s = self.stats
            names = set()
            for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored"):
                names.update(s.get(key) or {})
            pairs = (
                ("ok", "ok"), ("changed", "changed"), ("failed", "failures"),
                ("unreachable", "dark"), ("skipped", "skipped"), ("rescued", "rescued"),
                ("ignored", "ignored"),
            )  # fmt: skip
            return {
                host: {mine: int((s.get(theirs) or {}).get(host, 0)) for mine, theirs in pairs}
                for host in sorted(names)
            }
        # ad-hoc runs send no stats: count the results ourselves
        out: dict[str, dict[str, int]] = {}
        for host, counts in sorted(self.results.items()):
            changed = counts.get("changed", 0)
            out[host] = {
                "ok": counts.get("ok", 0) + changed,
                "changed": changed,
                "failed": counts.get("failed", 0),
                "unreachable": counts.get("unreachable", 0),
                "skipped": counts.get("skipped", 0),
                "rescued": 0,
                "ignored": counts.get("ignored", 0),
            }
        return out


class Lines:
    """The child's stdout: ``::ansible`` events to ``Events``, the rest like any runner's."""

    def __init__(self, ctx: RunContext, events: Events) -> None:
        self.markers = MarkerParser(ctx)
        self.events = events
        self.last: list[str] = []

    def line(self, stream: str, text: str) -> None:
        if stream == "stdout" and text.startswith("::ansible "):
            try:
                event = json.loads(text[len("::ansible ") :])
            except ValueError:
                event = None
            if isinstance(event, dict):
                self.events.handle(event)
                return
        self.markers.line(stream, text)


# -- the runner ----------------------------------------------------------------------------


def outcome(events: Events, lines: Lines, out: ProcOutcome, ctx: RunContext) -> RunResult:
    recap = events.recap()
    end = events.end or {}
    result: dict[str, Any] = {
        "recap": recap,
        "rc": end.get("rc"),
        "status": end.get("status"),
        "check_mode": ctx.dry_run,
    }
    failed = {
        host: ("unreachable" if c["unreachable"] else "failed")
        for host, c in recap.items()
        if c["failed"] or c["unreachable"]
    }
    result["failed_hosts"] = sorted(failed)
    if out.reason != "exited":
        # ansible-runner reports "failed" with no rc after a stop: the stop says what it was
        reason = ctx.stop.reason or out.reason
        msg = ctx.stop.message or reason.replace("_", " ")
        return RunResult.stopped(reason, msg, result=result, detail={"signal": out.signal})
    if lines.markers.error is not None:
        err = lines.markers.error
        return RunResult(
            outcome="failed", result=result, error=err, message=str(err.get("message", ""))
        )
    if not end:
        msg = f"the Ansible child ended without a result (exit code {out.exit_code})"
        return RunResult.failed(msg, kind="internal", exit_code=out.exit_code)
    rc = end.get("rc")
    if failed:
        listed = ", ".join(f"{h} ({why})" for h, why in sorted(failed.items()))
        if len(failed) == len(recap):
            msg = f"failed on every host: {listed}"
            return RunResult(
                outcome="failed",
                result=result,
                exit_code=rc,
                error={"message": msg, "kind": "hosts", "detail": {"hosts": failed}},
                message=msg,
            )
        msg = f"failed on {len(failed)} of {len(recap)} hosts: {listed}"
        return RunResult(outcome="partial", result=result, exit_code=rc, message=msg)
    if end.get("status") == "successful" and rc == 0:
        return RunResult(outcome="succeeded", result=result, exit_code=0)
    msg = f"ansible ended {end.get('status')} (rc {rc}): see the log"
    return RunResult(
        outcome="failed",
        result=result,
        exit_code=rc,
        error={"message": msg, "kind": "exit_code", "detail": {"rc": rc}},
        message=msg,
    )


class AnsibleRunner:
    def run(self, spec: RunSpec, ctx: RunContext) -> RunResult:
        if spec.template.ansible is None:
            return RunResult.failed("template has no ansible block", kind="setup")
        home = spec.settings.home if spec.settings is not None else ctx.workdir
        marker = f"{ctx.job_id}.{ctx.attempt}"
        secret_values = [
            ctx.params[n]
            for n in spec.template.secret_names()
            if ctx.params.get(n) not in (None, "")
        ]
        try:
            data_dir = private_dir(Path(home), marker)
        except OSError as exc:
            return RunResult.failed(f"cannot create the run dir: {exc}", kind="setup")
        try:
            try:
                job = build(spec, ctx, data_dir)
            except (SetupError, OpsError) as exc:
                return RunResult.failed(f"not started: {exc}", kind="setup")
            for key in ("ssh_key",):
                if job.get(key):
                    secret_values.append(job[key])
            secret_values += list((job.get("passwords") or {}).values())
            return self._supervise(spec, ctx, job, data_dir, Redactor(secret_values))
        finally:
            left = remove_tree(data_dir)
            if left is not None:  # it may hold the run's variables: say so where it is seen
                log.warning("job %s: %s", ctx.job_id, left)
                ctx.log_fn("meta", f"the run's private data dir stays: {left}")

    def _supervise(
        self,
        spec: RunSpec,
        ctx: RunContext,
        job: dict[str, Any],
        data_dir: Path,
        redactor: Redactor,
    ) -> RunResult:
        events = Events(spec, ctx, redactor)
        lines = Lines(ctx, events)
        proc = Supervisor(
            ProcSpec(
                argv=[sys.executable, "-m", "opsconsole.engine.runners.ansible_child"],
                env=child_env(spec, data_dir),
                cwd=str(data_dir / "project"),
                marker=f"{ctx.job_id}.{ctx.attempt}",
                stdin_data=json.dumps(job).encode(),
                max_line_bytes=max(spec.line_max - _MARKER_ROOM, 1),
            ),
            lines.line,
        )
        events.grid.start()
        try:
            try:
                proc.start()
            except OSError as exc:
                return RunResult.failed(f"cannot start ansible: {exc.strerror}", kind="spawn")
            if proc.pid is not None:
                ctx.pid_fn(proc.pid)
            out = proc.wait(
                cancelled=ctx.stop.is_set, deadline=spec.deadline(), grace=spec.kill_grace
            )
        finally:
            events.grid.close()
        if out.reason == "timed_out":
            ctx.stop.set("timed_out", f"timed out after {spec.timeout_s:g}s")
        return outcome(events, lines, out, ctx)
