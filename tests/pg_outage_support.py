"""A private PostgreSQL cluster that a test may stop and start again: the store outage tests.

The session cluster (``pg_support``) is shared by every test, so stopping it would break
the others; this one belongs to one test module. It is made the way ``pg_support`` makes
its cluster (the machine's binaries, a Unix socket only, as ``postgres`` when root) and
adds ``stop`` (``pg_ctl stop -m fast``: sessions are ended, as when an operator restarts the
server) and ``start``, on the same data directory and socket.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg_support import PG_ROOTS, Cluster


@dataclass(frozen=True)
class StoppableCluster(Cluster):
    """A ``Cluster`` with its server's life cycle in the test's hands."""

    @property
    def log(self) -> Path:
        return self.socketdir / "server.log"

    def start(self) -> None:
        opts = f"-k {self.socketdir} -c listen_addresses='' -p {self.port} -c fsync=off"
        done = self.run(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.log), "-o", opts, "-w", "start"
        )
        assert done.returncode == 0, done.stderr + self._log_text()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``fast`` ends every session with an error, as a restart does."""
        done = self.run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")
        assert done.returncode == 0, done.stderr + self._log_text()

    def running(self) -> bool:
        return self.run("pg_ctl", "-D", str(self.datadir), "status").returncode == 0

    def _log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def stoppable_cluster() -> Iterator[StoppableCluster]:
    """A started cluster of its own; stopped and removed at the end (running or not)."""
    if not PG_ROOTS:
        if os.environ.get("CI"):
            pytest.fail("CI needs PostgreSQL: /usr/lib/postgresql/*/bin is missing")
        pytest.skip("PostgreSQL is not installed (/usr/lib/postgresql/*/bin)")
    if os.getuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: initdb refuses root")
    owner = "postgres" if os.getuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="opsconsole-pg-outage-"))
    if owner is not None:
        shutil.chown(base, owner)
    cluster = StoppableCluster(PG_ROOTS[0], base / "data", base, 5432, owner)
    done = cluster.run(
        "initdb", "-D", str(cluster.datadir), "-A", "trust", "-E", "UTF8", "--no-sync"
    )
    assert done.returncode == 0, done.stderr
    cluster.start()
    try:
        yield cluster
    finally:
        if cluster.running():
            cluster.run("pg_ctl", "-D", str(cluster.datadir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
