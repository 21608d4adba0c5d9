"""The store's connection settings, transactions, schema checks against Alembic, its file
(where and how private it is made, noticed when removed) and a write lock held elsewhere."""

from __future__ import annotations

import grp
import os
import stat
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from store_faults import write_lock
from support import wait_until

import opsconsole
from opsconsole.core.errors import StoreUnavailable
from opsconsole.core.files import Access, make_dir
from opsconsole.core.store.db import (
    BUSY_TIMEOUT_MS,
    KNOWN_REVISIONS,
    SCHEMA_REVISION,
    Database,
    metadata,
)

MIGRATIONS = Path(opsconsole.__file__).parent / "migrations"


def scripts() -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


@pytest.fixture
def fresh(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    yield db
    db.dispose()


def test_schema_revision_is_the_scripts_head():
    assert scripts().get_current_head() == SCHEMA_REVISION
    assert SCHEMA_REVISION in KNOWN_REVISIONS
    assert set(KNOWN_REVISIONS) == {s.revision for s in scripts().walk_revisions()}


def test_ensure_schema_creates_an_empty_store_and_is_idempotent(fresh):
    assert fresh.current_revision() is None
    fresh.ensure_schema()
    assert fresh.current_revision() == SCHEMA_REVISION
    fresh.ensure_schema()
    assert fresh.current_revision() == SCHEMA_REVISION


# ix_jobs_durations (migration 0008) is an expression index: reflection cannot read it back
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_the_migrated_schema_matches_the_models(fresh):
    fresh.ensure_schema()
    with fresh.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, metadata) == []


def test_a_newer_schema_is_refused(db):
    with db.write() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreUnavailable, match=r"revision 9999\) is newer"):
        db.ensure_schema()
    with db.read() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "9999"


@pytest.mark.sqlite_only
def test_sqlite_connections_use_wal_and_a_busy_timeout(db):
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == BUSY_TIMEOUT_MS
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_a_write_rolls_back_on_error(db):
    with pytest.raises(RuntimeError), db.write() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'x'"))
        raise RuntimeError("boom")
    assert db.current_revision() == SCHEMA_REVISION


def test_an_unreadable_store_is_store_unavailable(tmp_path: Path):
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"this is not sqlite at all, just text" * 100)
    db = Database(f"sqlite:///{bad}")
    try:
        with pytest.raises(StoreUnavailable, match=f"^store sqlite:{bad}: file is not a database"):
            db.current_revision()
    finally:
        db.dispose()


def test_describe_names_the_file(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    assert db.describe() == f"sqlite:{tmp_path / 'x.db'}"
    db.dispose()


# -- the store file ---------------------------------------------------------------------------


class Notices(list[tuple[str, bool]]):
    """A notice callback that keeps what it hears."""

    def __call__(self, text: str, *, transient: bool = False) -> None:
        self.append((text, transient))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_is_private_and_said(tmp_path: Path, usual_umask: None):
    path = tmp_path / "new.db"
    heard = Notices()
    db = Database(f"sqlite:///{path}", notice=heard)
    try:
        assert heard == [(f"created a new store at {path}", False)]
        assert mode(path) == 0o600
        db.ensure_schema()
        with db.write() as conn:  # the write-ahead log and its index exist while it is open
            conn.execute(sa.text("UPDATE alembic_version SET version_num = version_num"))
        for name in ("new.db-wal", "new.db-shm"):
            assert mode(tmp_path / name) == 0o600, name
        assert db.file_problem() is None
    finally:
        db.dispose()
    again = Notices()
    Database(f"sqlite:///{path}", notice=again).dispose()
    assert again == []  # an existing store is not news


OPENER = """
import sys, time
from opsconsole.core.store.db import Database
db = Database(sys.argv[1], notice=lambda text, transient=False: print(text))
print("ready", flush=True)
go = float(sys.stdin.readline())  # the same instant for every opener, all of them ready
while time.time() < go:
    pass  # spin, not sleep: the first connections must meet within microseconds
try:
    db.ensure_schema()
    db.dispose()
except Exception as exc:
    print(f"FAILED {exc}")
"""


@pytest.mark.parametrize("start", ["no file", "an empty file"])
def test_many_processes_opening_a_new_store_at_once_all_get_it(tmp_path: Path, start: str):
    """Processes that open a store nobody has set up yet (a worker and the CLI commands
    started beside it) all get the same migrated store, and exactly one says it made it.
    An empty file was a store not yet in WAL mode, and SQLite refused all but one of the
    processes switching it at once with "database is locked", never waiting."""
    import subprocess
    import sys
    import time

    for round_ in range(3):  # the race needs the processes to meet: give it several chances
        path = tmp_path / f"race{round_}.db"
        if start == "an empty file":
            path.touch(mode=0o600)
        openers = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, f"sqlite:///{path}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(6)
        ]
        made: list[str] = []
        for proc in openers:
            assert proc.stdout is not None
            said = proc.stdout.readline()
            while said.startswith("created"):
                made.append(said)
                said = proc.stdout.readline()
            assert said == "ready\n", said
        go = time.time() + 0.3
        for proc in openers:
            assert proc.stdin is not None
            proc.stdin.write(f"{go}\n")
            proc.stdin.flush()
        said = [proc.communicate(timeout=120)[0] for proc in openers]
        assert all(proc.returncode == 0 for proc in openers), said
        assert not [s for s in said if "FAILED" in s or "Traceback" in s], said
        made += [s for s in said if "created a new store" in s]
        assert len(made) == (1 if start == "no file" else 0), said
        assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".new")]
        db = Database(f"sqlite:///{path}")
        try:
            assert db.current_revision() == SCHEMA_REVISION
        finally:
            db.dispose()


def test_a_store_is_made_only_in_a_directory_that_exists(tmp_path: Path):
    path = tmp_path / "nonexistent" / "dir" / "x.db"
    with pytest.raises(StoreUnavailable) as err:
        Database(f"sqlite:///{path}")
    assert str(err.value).startswith(f"store sqlite:{path}: the directory {path.parent} ")
    assert not (tmp_path / "nonexistent").exists()


def test_a_store_readable_by_others_is_made_private_and_said(tmp_path: Path, migrated_db: Path):
    path = tmp_path / "old.db"
    path.write_bytes(migrated_db.read_bytes())
    wal = tmp_path / "old.db-wal"
    wal.write_bytes(b"")
    for p in (path, wal):
        p.chmod(0o644)
    heard = Notices()
    db = Database(f"sqlite:///{path}", notice=heard)
    try:
        assert (mode(path), mode(wal)) == (0o600, 0o600)
        assert [text for text, _ in heard] == [
            f"{path} is open to group {grp.getgrgid(os.getgid()).gr_name} and every local "
            "user (mode 0644): made it 0600",
            f"{wal} is open to group {grp.getgrgid(os.getgid()).gr_name} and every local "
            "user (mode 0644): made it 0600",
        ]
        assert db.current_revision() == SCHEMA_REVISION
        path.chmod(0o604)  # loosened again behind its back: health reports it
        assert db.file_problem() == (
            f"{path} is open to every local user (mode 0604): run chmod 600 {path}"
        )
    finally:
        db.dispose()


@pytest.fixture
def other_group() -> grp.struct_group:
    """A group this process is not in by default (root may give files to any group)."""
    if os.geteuid() != 0:
        pytest.skip("giving a file to another group needs root here")
    mine = os.getgid()
    return next(g for g in grp.getgrall() if g.gr_gid != mine)


def test_a_shared_store_is_its_group_s(tmp_path: Path, other_group, usual_umask: None):
    access = Access(other_group.gr_name, other_group.gr_gid)
    home = tmp_path / "shared"
    assert make_dir(home, access)
    assert stat.S_IMODE(home.stat().st_mode) == 0o2770
    assert home.stat().st_gid == other_group.gr_gid
    db = Database(f"sqlite:///{home / 'opsconsole.db'}", access=access)
    try:
        db.ensure_schema()
        with db.write() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = version_num"))
        for name in ("opsconsole.db", "opsconsole.db-wal", "opsconsole.db-shm"):
            st = (home / name).stat()
            assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, other_group.gr_gid), name
        assert db.file_problem() is None
        assert db.access_text() == f"store files shared with group {other_group.gr_name} (0660)"
    finally:
        db.dispose()


def test_check_file_notices_a_removed_or_replaced_store(tmp_path: Path, migrated_db: Path):
    path = tmp_path / "s.db"
    path.write_bytes(migrated_db.read_bytes())
    db = Database(f"sqlite:///{path}")
    try:
        db.check_file()  # the same file: nothing to say
        with db.write() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = version_num"))
        db.check_file()
        path.unlink()
        with pytest.raises(StoreUnavailable, match=rf"^store sqlite:{path}: .* was removed"):
            db.check_file()
        path.write_bytes(migrated_db.read_bytes())  # a new file where the old one was
        with pytest.raises(StoreUnavailable, match=rf"^store sqlite:{path}: .* was replaced"):
            db.check_file()
        other = tmp_path / "other.db"
        other.write_bytes(migrated_db.read_bytes())
        os.replace(other, path)
        with pytest.raises(StoreUnavailable, match="was replaced"):
            db.check_file()
    finally:
        db.dispose()
    memory = Database("sqlite://")
    memory.check_file()  # no file to lose
    memory.dispose()


# -- a write lock held by another process -------------------------------------------------


def test_a_write_waiting_on_a_lock_says_so_then_goes_ahead(db_path: Path):
    heard = Notices()
    db = Database(f"sqlite:///{db_path}", busy_timeout=60, notice=heard)
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with db.write() as conn:
                conn.execute(sa.text("UPDATE alembic_version SET version_num = version_num"))
        except BaseException as exc:  # asserted below
            errors.append(exc)
        finally:
            done.set()

    try:
        with write_lock(db_path) as lock:
            t = threading.Thread(target=write)
            t.start()
            wait_until(lambda: heard, timeout=30)
            assert not done.is_set()
            assert heard == [
                (
                    f"waiting for store sqlite:{db_path}: another process holds its write lock "
                    "(giving up after 60s)",
                    True,
                )
            ]
            lock.release()
            t.join(timeout=30)
        assert done.is_set() and errors == []
        assert len(heard) == 1  # said once, not once per retry
        with db.read() as conn:  # the connection's own busy timeout is back to the whole wait
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60_000
    finally:
        db.dispose()


@pytest.mark.slow
def test_a_lock_held_past_the_busy_timeout_fails_naming_the_store(db_path: Path):
    heard = Notices()
    db = Database(f"sqlite:///{db_path}", busy_timeout=2.5, notice=heard)
    try:
        with write_lock(db_path), pytest.raises(StoreUnavailable) as err, db.write() as c:
            c.execute(sa.text("UPDATE alembic_version SET version_num = 'x'"))
        assert str(err.value) == (
            f"store sqlite:{db_path}: database is locked: another process held its write lock "
            "for 2.5s"
        )
        assert err.value.away  # the holder lets go: a claimed job's work waits, not fails
        assert [transient for _, transient in heard] == [True]
        assert db.current_revision() == SCHEMA_REVISION  # the body never ran
    finally:
        db.dispose()


def test_health_says_who_can_read_the_store_files(clocked, db_path: Path):
    checks = {c.name: c for c in clocked.health().checks}
    assert checks["files"].ok
    assert checks["files"].detail == "store files private to their owner (0600)"
    db_path.chmod(0o644)  # loosened behind the open store's back
    health = clocked.health()
    checks = {c.name: c for c in health.checks}
    assert not health.healthy
    assert not checks["files"].ok
    assert checks["files"].detail.endswith(f"(mode 0644): run chmod 600 {db_path}")
