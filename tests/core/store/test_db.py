"""The store's connection settings, transactions and schema checks against Alembic."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import opsconsole
from opsconsole.core.errors import StoreUnavailable
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
    db = Database(f"sqlite:///{tmp_path / 'fresh' / 'store.db'}")
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
        with pytest.raises(StoreUnavailable, match="store unavailable"):
            db.current_revision()
    finally:
        db.dispose()


def test_describe_names_the_file(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    assert db.describe() == f"sqlite:{tmp_path / 'x.db'}"
    db.dispose()
