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

import pytest

PG_ROOTS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


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

    def admin(self, sql: str) -> None:
        """Run one statement outside a transaction on the ``postgres`` database."""
        import psycopg

        user = self.owner or pwd.getpwuid(os.getuid()).pw_name
        with psycopg.connect(
            host=str(self.socketdir), port=self.port, user=user, dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]  # names are ours, quoted


def _missing() -> str | None:
    if not PG_ROOTS:
        return "PostgreSQL is not installed (/usr/lib/postgresql/*/bin)"
    if os.getuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb refuses root"
    return None


def start_cluster() -> Iterator[Cluster]:
    """Start a cluster for the session; stop it and remove its files at the end."""
    why = _missing()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs PostgreSQL: {why}")
        pytest.skip(why)
    owner = "postgres" if os.getuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="opsconsole-pg-"))
    if owner is not None:
        shutil.chown(base, owner)
    port = 5400 + os.getpid() % 500  # a socket file name only: no TCP listener
    cluster = Cluster(PG_ROOTS[0], base / "data", base, port, owner)
    done = cluster.run(
        "initdb", "-D", str(cluster.datadir), "-A", "trust", "-E", "UTF8", "--no-sync"
    )
    assert done.returncode == 0, done.stderr
    opts = f"-k {base} -c listen_addresses='' -p {port} -c fsync=off"
    log = base / "server.log"
    done = cluster.run(
        "pg_ctl", "-D", str(cluster.datadir), "-l", str(log), "-o", opts, "-w", "start"
    )
    assert done.returncode == 0, done.stderr + (log.read_text() if log.exists() else "")
    try:
        yield cluster
    finally:
        cluster.run("pg_ctl", "-D", str(cluster.datadir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base)
