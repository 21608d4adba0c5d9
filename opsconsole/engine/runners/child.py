"""Entry point of an isolated Python handler: ``python -m opsconsole.engine.runners.child``.

The same ``main`` runs in a fresh interpreter or in a process forked from the worker's
handler host (``runners/zygote.py``). It reads the job (parameters included) as JSON on stdin,
never from argv or the environment, and reports through the stdout marker protocol. SIGTERM
sets ``ctx.cancelled``; the worker sends KILL if the handler does not stop within the grace.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, TextIO


class _Stdout:
    """The handler's ``sys.stdout``: knows whether it left a line open, so markers start a line.

    Without it, ``sys.stdout.write("no newline")`` followed by ``::result`` would be one line
    of log text, and the job would lose its result.
    """

    def __init__(self, real: TextIO) -> None:
        self._real = real
        self._lock = threading.RLock()
        self._open_line = False

    def write(self, text: str) -> int:
        with self._lock:
            n = self._real.write(text)
            if text:
                self._open_line = not text.endswith("\n")
            return n

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def line(self, text: str) -> None:
        """Write ``text`` as a line of its own, now."""
        with self._lock:
            if self._open_line:
                self._real.write("\n")
            self._real.write(text + "\n")
            self._real.flush()
            self._open_line = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def main() -> int:
    from opsconsole.engine.context import RunContext
    from opsconsole.engine.runners.python import call_handler, error_of, load_handler

    job = json.loads(sys.stdin.read())
    out = _Stdout(sys.stdout)
    sys.stdout = out  # type: ignore[assignment]

    def emit(text: str) -> None:
        out.line(text)

    def log(stream: str, text: str) -> None:
        if stream == "err":
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        else:
            emit(text if not text.startswith("::") else " " + text)

    def progress(pct: int | None, step: str | None) -> None:
        if pct is None:
            emit(f"::step {step or ''}")
        else:
            emit(f"::progress {pct} {step or ''}".rstrip())

    ctx = RunContext(
        job_id=job["job_id"],
        attempt=job["attempt"],
        template=job["template"],
        params=job["params"],
        dry_run=job["dry_run"],
        workdir=Path(os.getcwd()),
        log_fn=log,
        progress_fn=progress,
    )
    signal.signal(signal.SIGTERM, lambda *_: ctx.stop.set("cancelled"))
    try:
        func = load_handler(job["handler"], Path(job["catalog_dir"]))
    except Exception as exc:
        emit("::error " + json.dumps(error_of(exc)))
        return 2
    res = call_handler(func, ctx)
    if res.result is not None:
        emit("::result " + json.dumps(res.result))
    if res.message:  # "WARNING: /var is 85% used", not "partial success (exit code 0)"
        emit("::message " + " ".join(res.message.split()))
    if res.outcome == "failed":
        err: dict[str, Any] = res.error or {"message": res.message or "failed", "kind": "failed"}
        emit("::error " + json.dumps(err))
        return res.exit_code or 1
    emit(f"::outcome {res.outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
