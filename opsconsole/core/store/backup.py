"""The store file itself: online backups, VACUUM and integrity checks.

A backup is SQLite's online backup API run from one read snapshot: the copy holds exactly
what was committed when it began, and in WAL mode writers go on committing meanwhile (the
snapshot is a reader; readers never block WAL writers). The copy is written private (0600)
under a temporary name and renamed into place only when complete and checked, so a
half-written file never looks like a backup.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from opsconsole.core.errors import InvalidParams, OpsError, StoreUnavailable
from opsconsole.core.store.db import SCHEMA_REVISION, Database

STEP_PAGES = 1024
"""Pages copied per backup step (4 MiB at SQLite's default page size)."""


@dataclass(frozen=True)
class Copied:
    """What a backup wrote."""

    path: Path
    pages: int
    bytes: int


@dataclass(frozen=True)
class Finding:
    """One check of ``db check``: its name, whether it passed, and what it found."""

    name: str
    ok: bool
    detail: str


def pg_dump_hint(url: sa.URL, file: str) -> str:
    """The command that backs up a PostgreSQL store (its password left to the operator)."""
    import shlex

    def given(name: str, value: object) -> str:
        # a Unix-socket store names its directory and port in the query (``?host=/run/...``)
        found = value or url.query.get(name)
        if isinstance(found, tuple):
            found = found[0] if found else None
        return str(found) if found else ""

    parts = ["pg_dump", "--format=custom", "--file", file]
    for flag, name, value in (("-h", "host", url.host), ("-p", "port", url.port)):
        if given(name, value):
            parts += [flag, given(name, value)]
    if url.username:
        parts += ["-U", url.username]
    return shlex.join([*parts, url.database or ""])


def backup(
    db: Database,
    dest: Path,
    *,
    force: bool = False,
    step: int = STEP_PAGES,
    progress: Callable[[int, int], None] | None = None,
) -> Copied:
    """Copy the SQLite store to ``dest`` while others keep writing to it.

    ``progress(done, total)`` hears each step (pages). Refused: another store kind (with the
    ``pg_dump`` command instead), an existing ``dest`` without ``force``, the store itself.
    """
    if db.dialect == "sqlite" and db.path is None:
        raise InvalidParams(f"db backup: {db.describe()} is not a file: there is nothing to copy")
    if db.path is None:
        raise InvalidParams(
            f"db backup copies SQLite stores only; back up {db.describe()} with: "
            f"{pg_dump_hint(db.url, str(dest))}"
        )
    dest = dest.expanduser().absolute()
    if not dest.parent.is_dir():
        raise InvalidParams(f"FILE: the directory {dest.parent} does not exist")
    if dest.is_dir():
        raise InvalidParams(f"FILE: {dest} is a directory")
    if dest.exists() or dest.is_symlink():
        if dest.resolve() == db.path.resolve():
            raise InvalidParams(f"FILE: {dest} is the store itself")
        if not force:
            raise InvalidParams(f"FILE: {dest} exists (add --force to replace it)")
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.partial")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        pages = _copy(db, tmp, step, progress)
        os.chmod(tmp, 0o600)
        os.replace(tmp, dest)
    finally:
        for leftover in (tmp, *(tmp.with_name(tmp.name + s) for s in ("-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
    _sync_dir(dest.parent)
    return Copied(dest, pages, dest.stat().st_size)


def _copy(db: Database, tmp: Path, step: int, progress: Callable[[int, int], None] | None) -> int:
    """Run the backup into ``tmp`` from one read snapshot; check and close the copy."""
    assert db.path is not None
    from urllib.parse import quote

    try:
        src = sqlite3.connect(
            f"file:{quote(str(db.path))}?mode=rw", uri=True, timeout=db.busy_timeout
        )
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"store {db.describe()}: {exc}") from None
    dst = sqlite3.connect(tmp)
    try:
        src.isolation_level = None
        # the snapshot: held across every step, so no step sees a later commit and the
        # backup never restarts however busy the writers are
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        done = 0

        def each(_status: int, remaining: int, total: int) -> None:
            nonlocal done
            done = total - remaining
            if progress is not None:
                progress(done, total)

        src.backup(dst, pages=step, progress=each, sleep=0)
        src.execute("COMMIT")
        # a single file, readable without its -wal: what an operator copies elsewhere
        dst.execute("PRAGMA journal_mode=DELETE").fetchone()
        found = dst.execute("PRAGMA quick_check").fetchone()[0]
        if found != "ok":
            raise OpsError(f"the copy failed its check ({found}): nothing was written")
        return int(dst.execute("PRAGMA page_count").fetchone()[0])
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"store {db.describe()}: backup failed: {exc}") from None
    finally:
        dst.close()
        src.close()


def _sync_dir(path: Path) -> None:
    """Make the rename durable (best effort: some file systems refuse it)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def vacuum(db: Database) -> tuple[int | None, int | None]:
    """Rebuild the store compactly (SQLite ``VACUUM``; ``VACUUM ANALYZE`` on PostgreSQL).

    Returns the SQLite file's size before and after (None elsewhere). Writers wait while
    SQLite rebuilds the file: run it when the store is quiet.
    """
    before = _size(db.path)
    # VACUUM refuses to run inside a transaction: straight to the driver, in autocommit
    raw = db.engine.raw_connection()
    driver: Any = raw.driver_connection
    try:
        if db.dialect == "sqlite":
            driver.execute("VACUUM")
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        else:
            driver.autocommit = True
            with driver.cursor() as cur:
                cur.execute("VACUUM (ANALYZE)")
    except db.engine.dialect.loaded_dbapi.Error as exc:  # the driver's own (PEP 249) errors
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise StoreUnavailable(f"store {db.describe()}: vacuum failed: {first}") from None
    finally:
        if db.dialect != "sqlite":
            try:  # back to the pool as it came: its next user's writes are transactions
                driver.autocommit = False
            except Exception:  # a broken connection: the pool opens a new one instead
                raw.invalidate()
        raw.close()
    after = _size(db.path)
    return before, after


def _size(path: Path | None) -> int | None:
    """Bytes of a SQLite store: its file and its write-ahead log."""
    if path is None:
        return None
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def check(db: Database) -> list[Finding]:
    """The store's own consistency: SQLite's integrity and foreign key checks, and the
    schema revision against the one this code expects."""
    out: list[Finding] = []
    try:
        with db.read() as conn:
            if db.dialect == "sqlite":
                rows = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check").fetchall()]
                ok = rows == ["ok"]
                detail = "ok" if ok else "; ".join(rows[:5]) + (" ..." if len(rows) > 5 else "")
                out.append(Finding("integrity", ok, detail))
                bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                out.append(
                    Finding(
                        "foreign keys",
                        not bad,
                        "ok" if not bad else f"{len(bad)} row(s) refer to missing rows",
                    )
                )
                mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                out.append(Finding("journal", mode == "wal", f"journal_mode={mode}"))
            else:
                out.append(Finding("integrity", True, "checked by PostgreSQL itself (see amcheck)"))
    except StoreUnavailable as exc:
        out.append(Finding("integrity", False, str(exc)))
        return out
    revision = db.current_revision()
    out.append(
        Finding(
            "schema",
            revision == SCHEMA_REVISION,
            f"revision {revision} (this opsconsole expects {SCHEMA_REVISION})",
        )
    )
    return out
