"""The store on PostgreSQL: the same migrations make the same schema (issue 12 builds on
this; the rest of the suite runs on SQLite until then)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from opsconsole.core.store.db import SCHEMA_REVISION, Database, metadata


def test_the_migrations_make_the_models_schema_on_postgresql(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        assert db.dialect == "postgresql"
        assert db.current_revision() is None
        db.ensure_schema()
        assert db.current_revision() == SCHEMA_REVISION
        db.ensure_schema()  # idempotent
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        # ix_jobs_durations (migration 0008) is an expression index written per dialect: the
        # models cannot declare it, so the database has it and the models do not
        expression = ("remove_index", "ix_jobs_durations")
        diff = [d for d in diff if (d[0], getattr(d[1], "name", None)) != expression]
        assert diff == []
    finally:
        db.dispose()


def test_the_audit_trail_is_append_only_on_postgresql(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        db.ensure_schema()
        with db.write() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO job_events (job_id, ts, kind, actor, message) "
                    "VALUES ('', now(), 'note', 'me', 'x')"
                )
            )
        for statement in ("UPDATE job_events SET actor = 'you'", "DELETE FROM job_events"):
            # an integrity error, as on SQLite: a refused write, not an unavailable store
            refused = pytest.raises(sa.exc.IntegrityError, match="the audit trail is append-only")
            with refused, db.write() as conn:
                conn.execute(sa.text(statement))
    finally:
        db.dispose()
