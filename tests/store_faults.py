"""Real store faults for tests: a small tmpfs to fill up, a process holding the write lock.

Nothing here imitates the store: the disk really fills (ENOSPC from the kernel) and the
lock is a real ``BEGIN IMMEDIATE`` in another process, so SQLite itself refuses the write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (``mount -o size=``) on ``path``; unmount it afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (a disk that can fill up) needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True, capture_output=True)


def resize(path: Path, size: str) -> None:
    """Grow (or shrink) the tmpfs mounted on ``path``, as an operator grows a full disk."""
    subprocess.run(
        ["mount", "-o", f"remount,size={size}", str(path)], check=True, capture_output=True
    )


def fill(path: Path) -> Path:
    """Fill the file system holding ``path`` with one file until the kernel says ENOSPC."""
    filler = path / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        # the last partial chunk may have left a few bytes: take them too
        try:
            while True:
                fh.write(b"\0")
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


def truncate_wal(db_file: Path) -> None:
    """Fold the WAL back into the store and empty it, so the next write must grow it."""
    import sqlite3

    conn = sqlite3.connect(db_file, isolation_level=None)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "a reader kept the WAL from being truncated"
    finally:
        conn.close()
    assert db_file.with_name(db_file.name + "-wal").stat().st_size == 0


_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


class WriteLock:
    """Another process that holds the store's write lock until ``release``."""

    def __init__(self, db_file: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(db_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30.0)
        assert ready, "the lock holder did not start within 30s"
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@contextlib.contextmanager
def write_lock(db_file: Path) -> Iterator[WriteLock]:
    """Hold ``db_file``'s write lock from a second process (released at the latest on exit)."""
    holder = WriteLock(db_file)
    try:
        yield holder
    finally:
        holder.kill()
