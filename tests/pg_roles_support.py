"""A private PostgreSQL cluster with peer authentication on its socket: each OS account
connects as the role of its own name, as operators do on a real host.

The lead's cluster (``pg_support``) trusts everyone; here ``pg_hba.conf`` has one line,
``local all all peer map=opsconsole``, and ``pg_ident.conf`` maps each login to the role of
its name, plus two lines for the tests' own process (root): it administers as ``postgres``
runs the workers as ``WORKER`` and, to
see a refusal in-process, a person as ``PERSON``. People run ``psql`` and the installed CLI through
``runuser``.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import psycopg
from pg_support import Cluster, new_cluster

WORKER = "ocworker"
"""The login role the tests' worker pools use (root maps to it)."""
OWNER = "ocowner"
"""A plain login role (no CREATEROLE) that owns a database and migrates it (root maps to it)."""
PERSON = "ocperson"
"""A person's login role the tests' own process may use (root maps to it too): the rules'
refusals seen in-process, through ``Database``."""

PG_HBA = "local all all peer map=opsconsole\n"
PG_IDENT = f"""\
opsconsole postgres postgres
opsconsole root     postgres
opsconsole root     {WORKER}
opsconsole root     {PERSON}
opsconsole root     {OWNER}
opsconsole /^([a-z_][a-z0-9_.-]*)$ \\1
"""


class PeerCluster(Cluster):
    """A cluster whose every connection is peer-authenticated; URLs name the role."""

    def url_as(self, database: str, role: str) -> str:
        return f"postgresql+psycopg://{role}@/{database}?host={self.socketdir}&port={self.port}"

    def new_database(self, owner: str = "postgres") -> str:
        """A new empty database owned by ``owner``; its name."""
        name = f"r_{uuid.uuid4().hex[:12]}"
        self.admin(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return name

    def sql_as(self, user: str, database: str, sql: str) -> subprocess.CompletedProcess[str]:
        """``psql -c SQL`` run by the OS account ``user`` (peer: the role of its name)."""
        argv = [
            "runuser", "-u", user, "--",
            str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", str(self.socketdir), "-p", str(self.port), "-d", database, "-c", sql,
        ]  # fmt: skip
        return subprocess.run(  # cwd: pytest's directories are root's alone
            argv, cwd="/", capture_output=True, text=True, timeout=60, check=False
        )

    def scalar(self, database: str, sql: str) -> object:
        """One value read as ``postgres`` (the test's own look at the store)."""
        with psycopg.connect(
            host=str(self.socketdir), port=self.port, user="postgres", dbname=database
        ) as conn:
            row = conn.execute(sql).fetchone()  # type: ignore[arg-type]  # the test's own SQL
            return None if row is None else row[0]


def start_peer_cluster() -> Iterator[PeerCluster]:
    """Start a peer-authenticated cluster (as ``postgres``; root only, like the OS users)."""
    for cluster in new_cluster(
        PeerCluster,
        prefix="opsconsole-pgpeer-",
        port=5900 + uuid.uuid4().int % 90,
        owner="postgres",
        auth="peer",
        files={"pg_hba.conf": PG_HBA, "pg_ident.conf": PG_IDENT},
        open_socket=True,  # every account reaches the socket; the data directory stays private
    ):
        for role in (WORKER, PERSON, OWNER):
            cluster.admin(f"CREATE ROLE {role} LOGIN")
        yield cluster
