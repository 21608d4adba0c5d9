"""Alembic environment: runs on the connection the store hands over (inside its write lock)."""

from __future__ import annotations

from alembic import context

from opsconsole.core.store.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only for `alembic` run by hand
    import sqlalchemy as sa

    url = context.config.get_main_option("sqlalchemy.url")
    engine = sa.create_engine(url or "sqlite:///opsconsole.db")
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
