"""Entry point of an isolated Python handler: ``python -m opsconsole.engine.runners.child``.

Reads the job (parameters included) as JSON on stdin, never from argv or the environment,
and reports through the stdout marker protocol. SIGTERM sets ``ctx.cancelled``; the
worker sends KILL if the handler does not stop within the grace period.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any


def main() -> int:
    from opsconsole.engine.context import RunContext
    from opsconsole.engine.runners.python import call_handler, error_of, load_handler

    job = json.loads(sys.stdin.read())
    out = sys.stdout
    lock = threading.Lock()

    def emit(text: str) -> None:
        with lock:
            out.write(text + "\n")
            out.flush()

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
    if res.outcome == "failed":
        err: dict[str, Any] = res.error or {"message": res.message or "failed", "kind": "failed"}
        emit("::error " + json.dumps(err))
        return res.exit_code or 1
    emit(f"::outcome {res.outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
