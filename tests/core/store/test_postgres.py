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


def test_a_store_dropped_without_dispose_closes_its_server_connections(pg_url: str) -> None:
    """A program that forgets ``dispose()`` must not leave its connections open on the server
    (nor to psycopg's "deleted while still open" when they are collected)."""
    import gc
    import weakref

    from support import wait_until

    db = Database(pg_url)
    with db.read() as conn:
        name = conn.execute(sa.text("SELECT current_database()")).scalar_one()
        mine = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    gone = weakref.ref(db)
    del db, conn
    gc.collect()
    assert gone() is None
    admin = Database(pg_url)
    try:

        def others() -> list[int]:
            with admin.read() as conn:
                sql = "SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid = :p"
                return list(conn.execute(sa.text(sql), {"d": name, "p": mine}).scalars())

        wait_until(lambda: not others(), timeout=10)
    finally:
        admin.dispose()


def test_dispose_closes_a_connection_a_straggler_thread_still_holds(pg_url: str) -> None:
    """A thread that outlived its work (a cancelled job's stragglers) may hold a connection
    when the store is disposed: the engine's own dispose leaves it to the collector, open on
    the server; ours closes it with the store."""
    db = Database(pg_url)
    held = db.engine.connect()  # checked out, as by a straggler, across the dispose
    raw = held.connection.dbapi_connection
    assert raw is not None and not raw.closed
    db.dispose()
    assert raw.closed
    with db.read() as conn:  # the store itself still works: a new pool opens new connections
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    db.dispose()
    held.invalidate()  # the straggler finds out when it next uses it
    held.close()


@pytest.mark.parametrize("how", ["dropped", "closed"])
def test_a_connection_closed_by_dispose_goes_back_without_a_reset_error(
    pg_url: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection still held when the store is disposed (a command interrupted by Ctrl-C in
    the middle of a read, its frames kept by the traceback) is closed by the dispose; when its
    holder lets go of it later, dropped or closed, the pool must not try to roll back the
    closed connection and log the failure with a traceback (on a command's stderr): CI caught
    that on ``submit --wait`` interrupted on PostgreSQL."""
    import gc

    db = Database(pg_url)
    held = db.engine.connect()
    held.execute(sa.text("SELECT 1"))  # in a transaction, as a read interrupted mid-way
    with caplog.at_level("ERROR", logger="sqlalchemy"):
        db.dispose()
        if how == "closed":
            # its holder hears that the connection is gone (a disconnect, not a crash)
            with pytest.raises(sa.exc.OperationalError) as lost:
                held.close()
            assert lost.value.connection_invalidated
        else:
            del held
            gc.collect()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy")] == []


def test_vacuum_gives_its_connection_back_to_the_pool_in_transactions(pg_url: str) -> None:
    """VACUUM runs in autocommit; the pooled connection it used must not stay so, or the next
    write through it (a job's claim and its events) would commit statement by statement."""
    from opsconsole.core.store.backup import vacuum

    db = Database(pg_url)
    try:
        db.ensure_schema()
        vacuum(db)
        with db.engine.connect() as conn:  # the pool's one connection: the one VACUUM used
            assert conn.connection.driver_connection.autocommit is False
    finally:
        db.dispose()
