"""Entry point of an Ansible run: ``python -m opsconsole.engine.runners.ansible_child``.

The only place that imports ``ansible_runner``. It runs under the worker's Supervisor (a job
cgroup, else a process group plus the job marker), so cancel and timeout reach everything
ansible-playbook starts, ``setsid()``'d workers included. The run (paths, options, the SSH
key and the become password) arrives as JSON on stdin, never on argv or in the environment,
and leaves as lines on stdout: Ansible's own readable text, and one ``::ansible {json}``
marker per event the worker turns into progress, grid cells and the recap
(``engine/runners/ansible.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
from typing import Any

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_RESULT_EVENTS = {
    "runner_on_start": "running",
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}
_KEEP_EVENTS = {"playbook_on_play_start", "playbook_on_task_start", "playbook_on_stats"}
_KEEP_EVENTS.add("playbook_on_handler_task_start")
_KEEP_EVENTS.add("playbook_on_start")
_STATS = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored", "processed")
_MSG_MAX = 500

_out_lock = threading.Lock()


def emit(text: str) -> None:
    with _out_lock:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def result_msg(res: Any) -> str:
    """One short line saying what a host's result was (Ansible censors ``no_log`` ones)."""
    if not isinstance(res, dict):
        return ""
    for key in ("msg", "stderr", "reason"):
        value = res.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().splitlines()[0][:_MSG_MAX]
    return ""


def compact(event: dict[str, Any]) -> dict[str, Any] | None:
    """What the worker needs of one ansible-runner event; None for the ones it ignores."""
    name = event.get("event", "")
    data = event.get("event_data") or {}
    if name in _RESULT_EVENTS:
        res = data.get("res")
        status = _RESULT_EVENTS[name]
        if status == "ok" and isinstance(res, dict) and res.get("changed"):
            status = "changed"
        if status == "failed" and data.get("ignore_errors"):
            status = "ignored"
        return {
            "e": "host",
            "status": status,
            "host": data.get("host") or "",
            "task": data.get("task") or "",
            "task_uuid": data.get("task_uuid") or "",
            "play": data.get("play") or "",
            "msg": "" if status == "running" else result_msg(res),
        }
    if name not in _KEEP_EVENTS:
        return None
    if name == "playbook_on_stats":
        return {"e": "stats", **{k: data.get(k) or {} for k in _STATS}}
    if name == "playbook_on_start":
        return {"e": "start"}
    if name == "playbook_on_play_start":
        return {"e": "play", "play": data.get("play") or data.get("name") or ""}
    return {
        "e": "task",
        "task": data.get("task") or data.get("name") or "",
        "task_uuid": data.get("task_uuid") or "",
        "play": data.get("play") or "",
    }


def main() -> int:
    job = json.loads(sys.stdin.read())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    vars_file = job.get("vars_file")

    def forget_vars() -> None:
        # Ansible read the extra vars before its first event: drop the file holding them
        if vars_file:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(vars_file)

    def on_event(event: dict[str, Any]) -> bool:
        text = _ANSI_RE.sub("", event.get("stdout") or "")
        for line in text.splitlines():
            if line.strip():
                emit(" " + line if line.startswith("::") else line)
        small = compact(event)
        if small is not None:
            if small["e"] == "start":
                forget_vars()
            emit("::ansible " + json.dumps(small, separators=(",", ":")))
        return False  # never write job_events/*.json: event data stays off the disk

    try:
        import ansible_runner
    except ImportError:
        emit(
            '::error {"kind": "setup", "message": "ansible-runner is not installed: '
            "pip install 'opsconsole[ansible]'\"}"
        )
        return 2

    kwargs: dict[str, Any] = {k: v for k, v in job["run"].items() if v not in (None, "", [], {})}
    if job.get("ssh_key"):
        kwargs["ssh_key"] = job["ssh_key"]
    if job.get("passwords"):
        kwargs["passwords"] = job["passwords"]
    try:
        runner = ansible_runner.interface.run(
            **kwargs,
            event_handler=on_event,
            cancel_callback=stop.is_set,
            quiet=True,
            suppress_env_files=True,
            rotate_artifacts=1,
        )
    except Exception as exc:  # a bad option or an unusable data dir: one line, not a traceback
        emit("::error " + json.dumps({"kind": "setup", "message": f"ansible-runner: {exc}"}))
        return 2
    finally:
        forget_vars()
    emit("::ansible " + json.dumps({"e": "end", "status": runner.status, "rc": runner.rc}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
