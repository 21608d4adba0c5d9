"""Helpers for the CLI tests (tests/cli): exit codes, JSON output, the one error line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typer.testing import Result

if TYPE_CHECKING:
    from opsconsole.config import Settings

Cli = Callable[..., Result]


def installed(settings: Settings, *args: str) -> list[str]:
    """The argv of the installed ``opsconsole`` command on the test's store and catalog."""
    return [
        str(Path(sys.executable).parent / "opsconsole"),
        "--home",
        str(settings.home),
        "--db",
        settings.db,
        "--catalog",
        str(settings.catalog),
        *args,
    ]


def ok(result: Result, code: int = 0) -> Result:
    """Assert the exit code, showing both streams when it is wrong."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def submit(cli: Cli, template: str, *args: str) -> dict[str, Any]:
    """Submit through the CLI and return the job's ``--json`` shape."""
    return as_json(cli("submit", template, *args, "--json"))


def one_error_line(result: Result) -> str:
    """The single ``opsconsole: error:`` line of a refused command (and nothing else)."""
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("opsconsole: error: "), lines[0]
    return lines[0]


def on_a_terminal(
    argv: list[str], when: bytes, then: Callable[[int], None], timeout: float = 60.0
) -> tuple[bytes, int, bool]:
    """Run ``argv`` on a real pseudo-terminal; once its output shows ``when``, call
    ``then(fd)`` (type an answer, release a lock). Returns (what it showed, its exit code,
    whether ``when`` was seen)."""
    import os
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the command on the pty
        os.execv(argv[0], argv)
    seen, done = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break  # the child closed the terminal: it ended
                if not chunk:
                    break
                seen += chunk
            if not done and when in seen:
                then(fd)
                done = True
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return seen, os.waitstatus_to_exitcode(status), done


def worker_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """The environment of an ``opsconsole`` subprocess on the test's store and catalog: no
    ``OPSCONSOLE_*`` from the caller's shell, fast heartbeats and kill grace, plus
    ``overrides`` (full variable names)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}
    env.update(
        OPSCONSOLE_HOME=str(settings.home),
        OPSCONSOLE_DB=settings.db,
        OPSCONSOLE_CATALOG=str(settings.catalog),
        OPSCONSOLE_HEARTBEAT_INTERVAL="0.2",
        OPSCONSOLE_KILL_GRACE="0.5",
    )
    env.update(overrides)
    return env


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process still running (a worker drains), then wait; KILL a laggard."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
