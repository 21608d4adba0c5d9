"""What every subject's job does: note when it started and ended in the marks file.

One ``os.write`` of a short line to a file opened ``O_APPEND`` once per process (atomic for
such lines on a local file): a few microseconds, the same for every queue, so the bench can
count finished jobs and read their times without asking each queue how it keeps them.
Times are ``time.monotonic()``, one clock for every process on the host.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

_fd: int | None = None
_lock = threading.Lock()


def _out() -> int:
    global _fd
    if _fd is None:
        with _lock:
            if _fd is None:
                _fd = os.open(os.environ["BENCH_MARKS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    return _fd


def mark(tag: str, sleep: float = 0.0) -> None:
    start = time.monotonic()
    if sleep:
        time.sleep(sleep)
    os.write(_out(), f"{tag} {start:.6f} {time.monotonic():.6f}\n".encode())


def noop(ctx: Any) -> None:
    """opsconsole's Python handler (``isolate: false``): the no-op job."""
    mark(str(ctx.params.get("i", "-")))


def nap(ctx: Any) -> None:
    """opsconsole's Python handler: the 50 ms sleep job."""
    mark(str(ctx.params.get("i", "-")), 0.05)
