"""Engines, connection settings, transactions and schema upgrades.

SQLite: WAL, ``synchronous=NORMAL``, a busy timeout on every connection, and write
transactions that ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of
failing with "database is locked" when a reader upgrades. Sessions are short: nothing
holds a reader open between calls. The store file is made here, private (or group-shared),
and only where its directory exists: a mistyped path is an error, not a new empty store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from opsconsole.core import model
from opsconsole.core.errors import Forbidden, OpsError, StoreUnavailable
from opsconsole.core.files import PRIVATE, Access, create_file, exposure, fix, tighten
from opsconsole.core.states import FINAL, JobState
from opsconsole.core.store.prepared import Prepared

SCHEMA_REVISION = "0008"
"""The newest Alembic revision this code knows; a test keeps it equal to the scripts' head."""
KNOWN_REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008")
BUSY_TIMEOUT_MS = 60_000
LOCK_NOTICE_AFTER = 1.0
"""Seconds a write waits for another process's lock before saying that it is waiting."""


# the tables (core/model.py), named here for the store modules that query them
metadata = model.metadata
jobs = model.jobs
deps = model.deps
events = model.events
logs = model.logs
workers = model.workers
meta = model.meta
approvals = model.approvals
reviews = model.reviews
freezes = model.freezes
host_tasks = model.host_tasks
instances = model.instances
plans = model.plans
schedules = model.schedules
schedule_fires = model.schedule_fires
checks = model.checks
check_results = model.check_results
webhooks = model.webhooks

log = logging.getLogger("opsconsole.store")


_NAME = re.compile(r"[a-z_]+")


def one_of(column: sa.ColumnElement[Any], names: Iterable[str]) -> sa.ColumnElement[bool]:
    """``column IN ('a', 'b')`` with fixed names (states) written into the SQL itself.

    A plain ``in_`` list is an "expanding" parameter that SQLAlchemy renders into the SQL
    again at every execution, even of a statement built once: on the worker's claim and
    finish that was a tenth of its CPU per job. Literal names keep the SQL (and so the
    plans) exactly as before. Only lowercase names are accepted: they are quoted by hand.
    """
    items = []
    for name in names:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a plain name: {name!r}")
        items.append(sa.literal_column(f"'{name}'"))
    return column.in_(items)


class Notice(Protocol):
    """Where the store says what an operator should know but that is not an error.

    ``transient`` marks a passing condition (waiting for a lock): worth showing to someone
    watching a terminal, noise in a script's stderr.
    """

    def __call__(self, text: str, *, transient: bool = False) -> None: ...


def log_notice(text: str, *, transient: bool = False) -> None:
    """The default notice: the log (a worker's log is where its operator looks)."""
    log.log(logging.INFO if transient else logging.WARNING, "%s", text)


def sqlite_path(url: str | sa.URL) -> Path | None:
    """The file of a SQLite store URL; None for other stores and in-memory ones."""
    try:
        url = sa.make_url(url)
    except sa.exc.ArgumentError:
        return None
    db = url.database
    if url.get_backend_name() != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def _existing_file(path: Path, busy_timeout: float) -> Callable[[], Any]:
    """Connections that open the store file, never create one (``mode=rw``).

    Only ``Database`` makes a store, private and said out loud; a connection opened after
    the file was removed must fail, not quietly start an empty store in its place.
    """
    import sqlite3
    from urllib.parse import quote

    uri = f"file:{quote(str(path))}?mode=rw"

    def connect() -> Any:
        return sqlite3.connect(uri, uri=True, timeout=busy_timeout, check_same_thread=False)

    return connect


CONNECT_TIMEOUT = 10
"""Seconds a connection to a database server may take before the store counts as away."""
KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 15,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
"""TCP keepalives: a server that vanished without closing its connections (a host powered
off, a network cut) is noticed within about 30 s instead of the system's two hours."""


TCP_USER_TIMEOUT_MS = 30_000
"""Milliseconds data sent to the server may stay unacknowledged before the connection is
given up: a query sent to a server host that vanished fails instead of waiting for the
system's retransmissions (about 15 minutes). Needs libpq 12 or later."""


def server_connect_args(url: sa.URL) -> dict[str, Any]:
    """libpq options for a PostgreSQL server that the URL does not set itself.

    Without a connect timeout, a server that is down behind a firewall that drops packets,
    or one that accepts and never answers, holds every call (a CLI command, a heartbeat)
    for minutes or for ever; with it, the call fails as ``StoreUnavailable`` and the caller
    backs off.
    """
    if url.get_backend_name() != "postgresql":
        return {}
    defaults: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, **KEEPALIVE}
    if url.get_driver_name() == "psycopg" and _libpq_version() >= 120000:
        defaults["tcp_user_timeout"] = TCP_USER_TIMEOUT_MS
    return {k: v for k, v in defaults.items() if k not in url.query}


def _libpq_version() -> int:
    try:
        import psycopg
    except ImportError:
        return 0
    return int(psycopg.pq.version())


class Database:
    """One engine per store URL; ``read()`` and ``write()`` are the only ways in."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float = BUSY_TIMEOUT_MS / 1000,
        notice: Notice | None = None,
        access: Access = PRIVATE,
    ) -> None:
        self.busy_timeout = busy_timeout
        """Seconds a write waits for another process's write lock before it fails."""
        self.notice: Notice = notice if notice is not None else log_notice
        self.access = access
        """Who may read the store's files (private, or one group)."""
        try:
            self.url = sa.make_url(url)
        except sa.exc.ArgumentError:
            raise StoreUnavailable(f"invalid store URL '{url[:60]}'") from None
        self.dialect = self.url.get_backend_name()
        self.path = sqlite_path(self.url) if self.dialect == "sqlite" else None
        """The SQLite file, or None (another dialect, an in-memory store)."""
        self._identity: tuple[int, int] | None = None
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            if self.path is not None:
                self._identity = self._prepare_file(self.path)
                kwargs["creator"] = _existing_file(self.path, busy_timeout)
            kwargs["connect_args"] = {"timeout": busy_timeout, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
            # claims count a key's holders under a lock, each statement on a new snapshot
            # (core/store/claim.py): whatever the server's default, never a stale one
            kwargs["isolation_level"] = "READ COMMITTED"
            kwargs["connect_args"] = {
                **server_connect_args(self.url),
                "options": _session_options(self.url),
            }
        try:
            self.engine: Engine = sa.create_engine(self.url, **kwargs)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
            raise StoreUnavailable(f"cannot use store {self.describe()}: {exc}") from None
        self._opened: dict[Any, Any] = {}
        """Server connections to close with the store (PostgreSQL's; SQLite has none)."""
        if self.dialect == "sqlite":
            self._setup_sqlite(self.engine, int(busy_timeout * 1000))
        else:
            _track_savepoints(self.engine)
            # a store dropped without dispose() (a program that forgot, a start that failed
            # half way) still closes its server connections when it is collected, instead of
            # leaving them idle on the server and to the driver's "deleted while open"
            # (the engine's listeners here hold no reference back to this object)
            self._opened = _track_connections(self.engine)
            weakref.finalize(self, _close_all, self.engine, self._opened)
        self._writer = self.engine.execution_options(opsconsole_write=True)

    def _prepare_file(self, path: Path) -> tuple[int, int]:
        """Make the store file if it is new (private, and only in an existing directory),
        take back access it should not give, and return its identity (device, inode)."""
        where = self.describe()
        if not path.parent.is_dir():
            raise StoreUnavailable(
                f"store {where}: the directory {path.parent} does not exist "
                "(create it, or correct --db / OPSCONSOLE_DB)"
            )
        try:
            if self._create(path):
                self.notice(f"created a new store at {path}")
            # SQLite makes -wal and -shm with the store file's mode: an older store's
            # files may be looser than that
            for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
                if p.exists():
                    done = tighten(p, self.access, self.access.file_mode)
                    if done:
                        self.notice(done)
            st = path.stat()
        except OpsError as exc:
            raise StoreUnavailable(f"store {where}: {exc}") from None
        except OSError as exc:
            raise StoreUnavailable(f"store {where}: {exc.strerror}") from None
        return st.st_dev, st.st_ino

    def _create(self, path: Path) -> bool:
        """Make a new store file, already in WAL mode, in one step; False if it exists.

        An empty file is a store that is not yet in WAL mode, and processes that open it at
        once race to switch it: SQLite refuses the loser with "database is locked" at once,
        without waiting on the busy timeout (measured: 30 of 160 openers of a fresh file).
        So the file is made under a private name, switched to WAL, and linked into place;
        ``link`` fails if another process was first, and then its store is the one used.
        """
        if path.exists():
            return False
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.new")
        create_file(tmp, self.access.file_mode, self.access)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL").fetchone()
            finally:
                conn.close()
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            return True
        finally:
            for leftover in (tmp, *(tmp.with_name(tmp.name + s) for s in ("-wal", "-shm"))):
                leftover.unlink(missing_ok=True)

    def check_file(self) -> None:
        """Raise StoreUnavailable when the SQLite file this Database opened was removed or
        replaced: this process would go on with a file nobody else sees any more."""
        if self.path is None or self._identity is None:
            return
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise StoreUnavailable(
                f"store {self.describe()}: the store file was removed while this process had "
                "it open; stopping so that nothing is written where no one looks"
            ) from None
        except OSError as exc:
            raise StoreUnavailable(f"store {self.describe()}: {exc.strerror}") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise StoreUnavailable(
                f"store {self.describe()}: the store file was replaced by another file while "
                "this process had it open; restart it to use the new one"
            )

    def file_problem(self) -> str | None:
        """Who can read the store's files beyond its access, with the fix; None if no one."""
        if self.path is None:
            return None
        for p in (self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))):
            try:
                problem = exposure(p, self.access, self.access.file_mode)
            except FileNotFoundError:
                continue
            if problem:
                return f"{problem}: run {fix(p, self.access, self.access.file_mode)}"
        return None

    def access_text(self) -> str:
        """Who may read the store's files, for ``health``."""
        if self.path is None:
            return "no local store file"
        mode = f"{self.access.file_mode:04o}"
        if self.access.shared:
            return f"store files shared with group {self.access.group} ({mode})"
        return f"store files private to their owner ({mode})"

    def _setup_sqlite(self, engine: Engine, busy_timeout_ms: int) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # take transaction control from the driver so we can BEGIN IMMEDIATE
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._switch_to_wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # straight to the driver: SQLAlchemy's execute costs more than the BEGIN itself
            if conn.get_execution_options().get("opsconsole_write", False):
                self._begin_immediate(conn, busy_timeout_ms)
            else:
                _begin(_driver(conn), "BEGIN")

    def _switch_to_wal(self, cur: Any) -> None:
        """Put a store that is not in WAL mode into it, however many processes try at once.

        Two openers switching the same file deadlock on its lock, and SQLite answers the
        loser "database is locked" at once rather than through the busy timeout; the switch
        is retried until the busy timeout has passed (the winner's switch takes milliseconds).
        """
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                cur.execute("PRAGMA journal_mode=WAL").fetchone()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)  # the lock is held for milliseconds; a retry, not a hope

    def _begin_immediate(self, conn: Connection, busy_timeout_ms: int) -> None:
        """Take the write lock, waiting up to the busy timeout in short slices.

        The lock is taken at BEGIN, before the transaction's body runs, so BEGIN can be
        retried: after the first slice the operator hears that the store is locked, instead
        of a silent pause as long as the busy timeout.
        """
        deadline = time.monotonic() + self.busy_timeout
        step_ms = min(busy_timeout_ms, int(LOCK_NOTICE_AFTER * 1000))
        told = False
        raw = _driver(conn)
        raw.execute(f"PRAGMA busy_timeout={step_ms}")
        try:
            while True:
                try:
                    _begin(raw, "BEGIN IMMEDIATE")
                    return
                except sa.exc.OperationalError as exc:
                    if not _is_locked(exc.orig):
                        raise
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise StoreUnavailable(
                            f"store {self.describe()}: database is locked: another process "
                            f"held its write lock for {self.busy_timeout:g}s",
                            away=True,  # the holder lets go: a later try may get it
                        ) from None
                    if not told:
                        told = True
                        self.notice(
                            f"waiting for store {self.describe()}: another process holds its "
                            f"write lock (giving up after {self.busy_timeout:g}s)",
                            transient=True,
                        )
                    raw.execute(f"PRAGMA busy_timeout={max(1, min(step_ms, int(left * 1000)))}")
        finally:
            with contextlib.suppress(sqlite3.Error):  # a broken connection says so itself
                raw.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")

    def describe(self) -> str:
        """Where the store is, for headers and health, without credentials."""
        if self.dialect == "sqlite":
            return f"sqlite:{self.url.database}"
        host = self.url.host or self.url.query.get("host") or "localhost"  # or a socket dir
        if isinstance(host, tuple):
            host = host[0]
        return f"{self.dialect}://{host}/{self.url.database}"

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except sa.exc.IntegrityError:
            raise
        except (sa.exc.OperationalError, sa.exc.DatabaseError, sa.exc.InterfaceError) as exc:
            _raise_refusal(exc)
            raise StoreUnavailable(
                f"store {self.describe()}: {_reason(exc)}", away=self._away(exc)
            ) from exc

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        try:
            with self._writer.connect() as conn:
                try:
                    with conn.begin():
                        yield conn
                        if self.dialect == "postgresql":
                            write_events(conn)
                finally:
                    forget_events(conn)
        except sa.exc.IntegrityError:
            raise
        except (sa.exc.OperationalError, sa.exc.DatabaseError, sa.exc.InterfaceError) as exc:
            _raise_refusal(exc)
            raise StoreUnavailable(
                f"store {self.describe()}: {_reason(exc)}", away=self._away(exc)
            ) from exc

    def _away(self, exc: sa.exc.DBAPIError) -> bool:
        """Did the server fail to answer (it may later), rather than refuse? On SQLite, a
        lock another process holds is the one such failure: its holder lets go."""
        if self.dialect == "sqlite":
            return _is_locked(exc.orig)
        if not isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
            return False
        if exc.connection_invalidated:
            return True
        state = getattr(exc.orig, "sqlstate", None)
        if state is not None:  # the server answered a statement: only these mean "away"
            return state.startswith("08") or state in _AWAY_STATES
        # libpq's own failure (no socket, refused, timed out) or the server's FATAL at login
        fatal = str(exc.orig).partition("FATAL:")[2].strip()
        return not fatal or fatal.startswith(_AWAY_AT_LOGIN)

    def check_writable(self) -> None:
        """Raise StoreUnavailable unless a write succeeds now: a row written, then rolled back.

        Taking the write lock is not enough: SQLite grants ``BEGIN IMMEDIATE`` on a read-only
        file, and only the first page written fails. Nothing is ever committed.
        """
        try:
            with self.write() as conn:
                probe = f"write-probe-{uuid.uuid4().hex}"
                conn.execute(meta.insert().values(key=probe, value=""))
                raise _RolledBack
        except _RolledBack:
            pass

    def dispose(self) -> None:
        _close_all(self.engine, self._opened)

    # -- schema ---------------------------------------------------------------------

    def current_revision(self) -> str | None:
        with self.read() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def ensure_schema(self) -> None:
        """Upgrade an older or empty store; refuse one newer than this code knows.

        On PostgreSQL, where workers of other hosts may be running older code, an older
        store that running jobs still hold leases on is not upgraded under them: that takes
        ``opsconsole db upgrade --force`` (an empty store is always made).
        """
        rev = self.current_revision()
        if rev == SCHEMA_REVISION:
            return
        if rev is not None and rev not in KNOWN_REVISIONS:
            raise StoreUnavailable(
                f"store {self.describe()}: its schema (revision {rev}) is newer than this "
                f"opsconsole knows ({SCHEMA_REVISION}): upgrade opsconsole"
            )
        self.upgrade(force=self.dialect != "postgresql")

    def upgrade(self, *, force: bool = False) -> tuple[str | None, str]:
        """Run the migrations up to this code's schema; (revision before, after).

        One process migrates at a time: SQLite's write lock, PostgreSQL's advisory lock
        ``MIGRATION_LOCK`` (held to the end of the migrating transaction; PostgreSQL's DDL
        is transactional, so a process that waited sees the whole upgrade or none of it).
        The others wait for it, then find the schema current and return. Without ``force``
        an older store is not upgraded while running jobs hold leases (their workers may
        run older code); an empty store always is.
        """
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parents[2] / "migrations"))
        with self.write() as conn:
            if self.dialect == "postgresql":
                conn.execute(_MIGRATION_LOCK)
            # re-check inside the lock: another process may have just upgraded
            rev = None
            if sa.inspect(conn).has_table("alembic_version"):
                rev = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
                if rev == SCHEMA_REVISION:
                    return rev, rev
            if rev is not None and not force:
                self._refuse_under_leases(conn, rev)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            return rev, SCHEMA_REVISION

    def _refuse_under_leases(self, conn: Connection, rev: str) -> None:
        """Raise StoreUnavailable when running jobs hold leases (by the store's clock)."""
        now: Any = sa.func.statement_timestamp() if self.dialect == "postgresql" else None
        if now is None:
            from opsconsole.core.clock import utcnow

            now = utcnow()
        held = conn.execute(
            sa.select(sa.func.count()).where(jobs.c.state == "running", jobs.c.lease_until >= now)
        ).scalar_one()
        if held:
            raise StoreUnavailable(
                f"store {self.describe()}: its schema is at revision {rev}, older than this "
                f"opsconsole's ({SCHEMA_REVISION}), and {held} running job(s) hold leases: "
                "drain the workers first, or run: opsconsole db upgrade --force"
            )


MIGRATION_LOCK = 0x6F70_7363_6D69_6772
"""The PostgreSQL advisory lock key that serialises migrations ("opscmigr")."""
_MIGRATION_LOCK = sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK))


IDLE_IN_TRANSACTION_MS = 10_000
"""A PostgreSQL session idle inside a transaction this long is ended by the server. No
transaction of opsconsole waits on anything but its own statements; one that sits idle is
a process frozen mid-transaction (SIGSTOP, a paused VM), whose row locks would otherwise
block the reaper that must settle its jobs for as long as it stays frozen."""


def _session_options(url: sa.URL) -> str:
    """libpq ``options`` for every PostgreSQL session: the URL's own, plus our timeout."""
    given = url.query.get("options", "")
    if isinstance(given, tuple):
        given = " ".join(given)
    ours = f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
    return f"{given} {ours}".strip()


# -- the feed in commit order (PostgreSQL) ------------------------------------------------

FEED_LOCK = 0x6F7073_66656564
"""The advisory lock that event-writing transactions take last, just before they commit."""
CHANNEL = "opsconsole"
"""The NOTIFY channel every event-writing transaction signals on commit."""
_PENDING = "opsconsole.pending_events"
_MARKS = "opsconsole.event_marks"
EVENT_KEYS = ("job_id", "ts", "kind", "actor", "state", "attempt", "message", "data")
"""The columns an event row gives (its id comes from the store)."""
_insert_events = Prepared(lambda _: events.insert(), keys=EVENT_KEYS)
_take_feed_lock = Prepared(lambda _: sa.text("SELECT pg_advisory_xact_lock(:key)"))
_notify = Prepared(
    # the newest id is this session's last draw from the events' sequence: under FEED_LOCK
    # no other transaction draws from it before this one commits
    lambda _: sa.text(
        "SELECT pg_notify(:channel, "
        "currval(pg_get_serial_sequence('job_events', 'id'))::text || :flags)"
    )
)


def _event_and_notify() -> sa.Select[Any]:
    """Insert one event and notify with its id: the insert runs to completion before the
    notification reads its id (a data-modifying WITH), and both take effect at commit."""
    ins = (
        events.insert()
        .values({k: sa.bindparam(k, type_=events.c[k].type) for k in EVENT_KEYS})
        .returning(events.c.id)
        .cte("ins")
    )
    top = sa.cast(sa.select(sa.func.max(ins.c.id)).scalar_subquery(), sa.Text)
    return sa.select(
        sa.func.pg_notify(sa.bindparam("channel", type_=sa.Text), top + sa.bindparam("flags"))
    )


_insert_event_notify = Prepared(lambda _: _event_and_notify())


def defer_event(conn: Connection, row: dict[str, Any]) -> bool:
    """Hold an event row until its transaction's end, on PostgreSQL; False elsewhere.

    A sequence gives ids at insert, not at commit: a transaction that inserted id N and
    commits after the one that inserted N+1 would be skipped by a follower already past
    N+1. Held rows are inserted by ``write_events`` under one lock, so ids follow commits.
    """
    if conn.dialect.name != "postgresql":
        return False
    if not conn.get_execution_options().get("opsconsole_write", False):
        raise RuntimeError("an event is written only in a write transaction (Database.write)")
    conn.info.setdefault(_PENDING, []).append(row)
    return True


def write_events(conn: Connection) -> None:
    """Insert the held events last, under ``FEED_LOCK``, and NOTIFY the listeners.

    The lock is held to the commit, so event-writing transactions insert and commit one at
    a time in id order: a follower reading ``id > cursor`` never passes an id that commits
    later. It is taken after every row lock of the transaction, so it cannot close a cycle
    of waits (no deadlock). The notification is delivered at commit, never before it.
    """
    rows: list[dict[str, Any]] = conn.info.pop(_PENDING, [])
    conn.info.pop(_MARKS, None)
    if not rows:
        return
    _take_feed_lock.execute(conn, {"key": FEED_LOCK})
    flags = change_flags(rows)
    said = {"channel": CHANNEL, "flags": f" {flags}" if flags else ""}
    if len(rows) == 1:  # the usual case: the insert and its notification in one statement
        _insert_event_notify.execute(conn, {**rows[0], **said})
        return
    _insert_events.execute_many(conn, rows)
    _notify.execute(conn, said)


def forget_events(conn: Connection) -> None:
    """Drop held events of a transaction that ended without ``write_events`` (rolled back):
    ``conn.info`` lives as long as the pooled connection, not as long as the transaction."""
    conn.info.pop(_PENDING, None)
    conn.info.pop(_MARKS, None)


def change_payload(top: int, rows: list[dict[str, Any]]) -> str:
    """What a notification says: the newest event id, then flags of what may have changed.

    ``q``: a job became ready to claim (or a freeze ended); ``e``: a job ended (its key,
    team slot or dependents are free); ``c``: a running job was asked to stop. Parsed by
    ``notify.Change``.
    """
    return f"{top} {change_flags(rows)}".rstrip()


def change_flags(rows: list[dict[str, Any]]) -> str:
    """The flags of ``change_payload`` for the events ``rows``."""
    flags = ""
    if any(r.get("state") == JobState.QUEUED.value or r.get("kind") in _FREES for r in rows):
        flags += "q"
    if any(r.get("state") in _FINAL_NAMES or r.get("kind") == "retried" for r in rows):
        flags += "e"
    if any(r.get("kind") == "cancel_requested" for r in rows):
        flags += "c"
    return flags


_FINAL_NAMES = frozenset(s.value for s in FINAL)
_FREES = frozenset({"freeze_lifted"})
"""Event kinds that may make queued jobs claimable without a state of their own."""


def _track_connections(engine: Engine) -> dict[Any, Any]:
    """The driver connections ``engine`` opened and has not closed yet, each with its pool
    record.

    ``engine.dispose()`` closes only the connections in its pool. One still checked out by a
    thread that outlived its work (a job's stragglers after a cancel, a handler abandoned by
    its pool) or by a frame a traceback keeps (a command interrupted by Ctrl-C in the middle
    of a read) would go back to the discarded pool, be collected some time later, and leave
    its server session open until then (with the driver's "deleted while still open"
    warning). Holding them here lets ``_close_all`` close them with the store.
    """
    opened: dict[Any, Any] = {}

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        opened[dbapi_conn] = record

    @event.listens_for(engine.pool, "close")
    def _on_close(dbapi_conn: Any, _record: Any) -> None:
        opened.pop(dbapi_conn, None)

    @event.listens_for(engine.pool, "close_detached")
    def _on_close_detached(dbapi_conn: Any) -> None:
        opened.pop(dbapi_conn, None)

    return opened


def _close_all(engine: Engine, opened: dict[Any, Any]) -> None:
    """Dispose of ``engine``, then close the connections its pool did not hold back then.

    Each is closed through its pool record (``invalidate``), not behind the pool's back: a
    record left pointing at a closed connection is "reset" with a rollback when its holder
    lets go of it, which fails and is logged as an error with a traceback (on a command's
    stderr, after Ctrl-C). An invalidated record has nothing to reset.
    """
    engine.dispose()
    for dbapi_conn, record in list(opened.items()):
        opened.pop(dbapi_conn, None)
        if record is not None and record.dbapi_connection is dbapi_conn:
            with contextlib.suppress(Exception):  # its close failed: closed directly below
                record.invalidate()
        with contextlib.suppress(Exception):  # already broken or closed: nothing to release
            dbapi_conn.close()


def _track_savepoints(engine: Engine) -> None:
    """Events held inside a savepoint that is rolled back are dropped with it.

    Savepoints nest, so a stack of marks (how many events were held when each began) is
    enough; SQLAlchemy names a savepoint only after this hook sees it begin.
    """

    @event.listens_for(engine, "savepoint")
    def _on_savepoint(conn: Connection, _name: str | None) -> None:
        conn.info.setdefault(_MARKS, []).append(len(conn.info.get(_PENDING, ())))

    @event.listens_for(engine, "release_savepoint")
    def _on_release(conn: Connection, _name: str, _context: Any) -> None:
        marks = conn.info.get(_MARKS)
        if marks:
            marks.pop()

    @event.listens_for(engine, "rollback_savepoint")
    def _on_rollback(conn: Connection, _name: str, _context: Any) -> None:
        marks = conn.info.get(_MARKS)
        if marks:
            mark = marks.pop()
            if _PENDING in conn.info:
                del conn.info[_PENDING][mark:]


_AWAY_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
"""Shutdown by an administrator, a crash, cannot connect now, too many connections."""
_AWAY_AT_LOGIN = (
    "the database system is",  # starting up, shutting down, in recovery mode
    "sorry, too many clients",
    "remaining connection slots",
)
"""The start of the server's FATAL messages at login that a later try may not meet; every
other one (a wrong password, a missing role or database, pg_hba.conf) is a refusal."""


class _RolledBack(Exception):
    """Raised inside ``check_writable``'s transaction so that it is rolled back."""


def _is_locked(exc: BaseException | None) -> bool:
    return "database is locked" in str(exc) or "database is busy" in str(exc)


def _begin(raw: Any, sql: str) -> None:
    """Begin a SQLite transaction on the driver; its errors as SQLAlchemy's, as from any
    statement (``Database.read``/``write`` turn those into ``StoreUnavailable``)."""
    try:
        raw.execute(sql)
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc


def _driver(conn: Connection) -> Any:
    """The DBAPI connection under ``conn`` (for statements SQLAlchemy need not see)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    return raw


INSUFFICIENT_PRIVILEGE = "42501"
"""PostgreSQL's SQLSTATE for a refused grant, and the one the rules of migration 0007 raise."""


def _raise_refusal(exc: sa.exc.DBAPIError) -> None:
    """Raise Forbidden when PostgreSQL refused the connected role (a missing grant, or a rule
    of migration 0007): the person may not do this, the store itself is fine."""
    if getattr(exc.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE:
        reason = _reason(exc)
        if not reason.startswith("the database refuses"):
            reason = f"the database refuses: {reason}"
        raise Forbidden(reason) from exc


def _reason(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
