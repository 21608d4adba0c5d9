"""Engines, connection settings, transactions and schema upgrades.

SQLite: WAL, ``synchronous=NORMAL``, a busy timeout on every connection, and write
transactions that ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of
failing with "database is locked" when a reader upgrades. Sessions are short: nothing
holds a reader open between calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from opsconsole.core import model
from opsconsole.core.errors import StoreUnavailable

SCHEMA_REVISION = "0002"
"""The newest Alembic revision this code knows; a test keeps it equal to the scripts' head."""
KNOWN_REVISIONS = ("0001", "0002")
BUSY_TIMEOUT_MS = 60_000

metadata = model.SQLModel.metadata
jobs = model.Job.__table__
deps = model.JobDependency.__table__
events = model.JobEvent.__table__
logs = model.JobLog.__table__
workers = model.Worker.__table__
meta = model.StoreMeta.__table__


def _sqlite_path(url: sa.URL) -> Path | None:
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


class Database:
    """One engine per store URL; ``read()`` and ``write()`` are the only ways in."""

    def __init__(self, url: str, *, busy_timeout: float = BUSY_TIMEOUT_MS / 1000) -> None:
        self.busy_timeout = busy_timeout
        """Seconds a write waits for another process's write lock before it fails."""
        try:
            self.url = sa.make_url(url)
        except sa.exc.ArgumentError:
            raise StoreUnavailable(f"invalid store URL '{url[:60]}'") from None
        self.dialect = self.url.get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            path = _sqlite_path(self.url)
            if path is not None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreUnavailable(f"cannot create {path.parent}: {exc.strerror}") from None
            kwargs["connect_args"] = {"timeout": busy_timeout, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = sa.create_engine(self.url, **kwargs)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
            raise StoreUnavailable(f"cannot use store {self.describe()}: {exc}") from None
        if self.dialect == "sqlite":
            self._setup_sqlite(self.engine, int(busy_timeout * 1000))
        self._writer = self.engine.execution_options(opsconsole_write=True)

    @staticmethod
    def _setup_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # take transaction control from the driver so we can BEGIN IMMEDIATE
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("opsconsole_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    def describe(self) -> str:
        """Where the store is, for headers and health, without credentials."""
        if self.dialect == "sqlite":
            return f"sqlite:{self.url.database}"
        return f"{self.dialect}://{self.url.host or 'localhost'}/{self.url.database}"

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except sa.exc.IntegrityError:
            raise
        except (sa.exc.OperationalError, sa.exc.DatabaseError) as exc:
            raise StoreUnavailable(f"store unavailable: {_reason(exc)}") from exc

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        try:
            with self._writer.connect() as conn, conn.begin():
                yield conn
        except sa.exc.IntegrityError:
            raise
        except (sa.exc.OperationalError, sa.exc.DatabaseError) as exc:
            raise StoreUnavailable(f"store unavailable: {_reason(exc)}") from exc

    def dispose(self) -> None:
        self.engine.dispose()

    # -- schema ---------------------------------------------------------------------

    def current_revision(self) -> str | None:
        with self.read() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def ensure_schema(self) -> None:
        """Upgrade an older or empty store; refuse one newer than this code knows."""
        rev = self.current_revision()
        if rev == SCHEMA_REVISION:
            return
        if rev is not None and rev not in KNOWN_REVISIONS:
            raise StoreUnavailable(
                f"the store's schema (revision {rev}) is newer than this opsconsole knows "
                f"({SCHEMA_REVISION}): upgrade opsconsole"
            )
        self.upgrade()

    def upgrade(self) -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parents[2] / "migrations"))
        with self.write() as conn:
            # re-check inside the write lock: another process may have just upgraded
            if sa.inspect(conn).has_table("alembic_version"):
                rev = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
                if rev == SCHEMA_REVISION:
                    return
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


def _reason(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
