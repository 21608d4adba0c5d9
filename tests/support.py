"""Helpers shared by the tests: bounded waits, template files, a store locked by another process."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def write_template(catalog: Path, name: str, body: str) -> Path:
    """Write ``templates/<name>.yaml``; ``body`` is the YAML without the name line."""
    path = catalog / "templates" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"name: {name}\n{body}")
    return path


LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


@contextlib.contextmanager
def write_lock_held(db_path: Path) -> Iterator[Callable[[], None]]:
    """Another process holds the store's write lock (``BEGIN IMMEDIATE``) until released.

    Yields ``release``; the process is gone when the block ends, released or not.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(db_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    stdin = proc.stdin

    def release() -> None:
        if proc.poll() is None:
            stdin.write("\n")
            stdin.flush()
            proc.wait(timeout=30)

    try:
        assert proc.stdout.readline().strip() == "locked"
        yield release
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        stdin.close()
        proc.stdout.close()
