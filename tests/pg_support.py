"""A private PostgreSQL cluster for the tests: the machine's own PostgreSQL binaries, a fresh
data directory, a Unix socket only (no TCP port to collide with anything).

``initdb`` and ``pg_ctl`` refuse to run as root, so as root the cluster belongs to the
``postgres`` account (``runuser``); its directory lives outside pytest's base temp, which
is private to root. Where PostgreSQL is not installed the PostgreSQL tests are skipped with
that reason, except under CI, where a missing PostgreSQL fails the run (``scripts/test.sh``
installs it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

PG_ROOTS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
C = TypeVar("C", bound="Cluster")


@dataclass(frozen=True)
class Cluster:
    bindir: Path
    datadir: Path
    socketdir: Path
    port: int
    owner: str | None
    """The OS account the server runs as when the tests run as root (else None: ours)."""

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if self.owner is not None:
            cmd = ["runuser", "-u", self.owner, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def url(self, database: str) -> str:
        user = self.owner or pwd.getpwuid(os.getuid()).pw_name
        return f"postgresql+psycopg://{user}@/{database}?host={self.socketdir}&port={self.port}"

    def create_database(self, template: str | None = None) -> str:
        """A new database, empty or a copy of ``template``; its SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        copy = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        self.admin(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a test's database, ending any session a test left open on it."""
        import sqlalchemy as sa

        name = sa.make_url(url).database
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @property
    def log(self) -> Path:
        return self.socketdir / "server.log"

    def start(self) -> None:
        opts = f"-k {self.socketdir} -c listen_addresses='' -p {self.port} -c fsync=off"
        done = self.run(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.log), "-o", opts, "-w", "start"
        )
        assert done.returncode == 0, done.stderr + self.log_text()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``fast`` ends every session with an error, as a restart does."""
        done = self.run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")
        assert done.returncode == 0, done.stderr + self.log_text()

    def running(self) -> bool:
        return self.run("pg_ctl", "-D", str(self.datadir), "status").returncode == 0

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def admin(self, sql: str) -> None:
        """Run one statement outside a transaction on the ``postgres`` database."""
        import psycopg

        user = self.owner or pwd.getpwuid(os.getuid()).pw_name
        with psycopg.connect(
            host=str(self.socketdir),
            port=self.port,
            user=user,
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]  # names are ours, quoted


def missing() -> str | None:
    """Why no cluster can be started here, or None."""
    if not PG_ROOTS:
        return "PostgreSQL is not installed (/usr/lib/postgresql/*/bin)"
    if os.getuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb refuses root"
    return None


def new_cluster(
    kind: type[C],
    *,
    prefix: str,
    port: int,
    owner: str | None = None,
    auth: str = "trust",
    files: dict[str, str] | None = None,
    open_socket: bool = False,
) -> Iterator[C]:
    """Make, start and at the end stop and remove a cluster of type ``kind``.

    ``files``: configuration files written into the data directory before the start (an
    auth setup's ``pg_hba.conf``); ``open_socket``: every account may reach the socket
    directory (the data directory stays private). Skipped where PostgreSQL is missing,
    failed under CI.
    """
    why = missing()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs PostgreSQL: {why}")
        pytest.skip(why)
    if owner is None and os.getuid() == 0:
        owner = "postgres"
    base = Path(tempfile.mkdtemp(prefix=prefix))
    if open_socket:
        base.chmod(0o755)
    if owner is not None:
        shutil.chown(base, owner)
    cluster = kind(PG_ROOTS[0], base / "data", base, port, owner)
    done = cluster.run("initdb", "-D", str(cluster.datadir), "-A", auth, "-E", "UTF8", "--no-sync")
    assert done.returncode == 0, done.stderr
    for name, text in (files or {}).items():
        (cluster.datadir / name).write_text(text)
    cluster.start()
    try:
        yield cluster
    finally:
        if cluster.running():
            cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def start_cluster() -> Iterator[Cluster]:
    """Start the session's cluster; stop it and remove its files at the end."""
    # the port names a socket file only (no TCP listener): one per pytest process
    yield from new_cluster(Cluster, prefix="opsconsole-pg-", port=5400 + os.getpid() % 500)
