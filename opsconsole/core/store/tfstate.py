"""Where Terraform keeps an instance's state when the store is shared: the store's own database.

The only place that knows how Terraform's ``pg`` backend reaches the store. With PostgreSQL,
every worker host applies instances, so their state (and its lock: a PostgreSQL advisory lock
held by Terraform's session, gone with it) lives in the schema ``SCHEMA``, one Terraform
workspace per instance. The connection string reaches Terraform only as ``PG_CONN_STR`` in its
environment: never argv, a file, the log or the store. SQLite keeps the local state files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from opsconsole.core.store.db import Database

SCHEMA = "opsconsole_terraform"
"""The schema Terraform's ``pg`` backend manages (its table ``states``, one row a workspace)."""
APPLICATION = "opsconsole-terraform"
"""Terraform's sessions as ``pg_stat_activity`` shows them."""
PASSED = ("sslmode", "sslcert", "sslkey", "sslrootcert", "connect_timeout")
"""Connection options of the store's URL that Terraform's driver (lib/pq) understands too."""

STATES = sa.table("states", sa.column("id"), sa.column("name"), sa.column("data"), schema=SCHEMA)
"""Terraform's own table (``pg`` backend): read here, written only by Terraform."""
_EXISTS = sa.select(sa.func.to_regclass(f"{SCHEMA}.states"))
_DATA = sa.select(STATES.c.data).where(STATES.c.name == sa.bindparam("name"))
_LOCKED = sa.text(
    f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.states s JOIN pg_locks l"
    " ON l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted"
    " AND (l.classid::bigint << 32 | l.objid::bigint) = s.id"
    " WHERE s.name = :name"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
)
"""Whether a Terraform session holds the workspace's lock: an advisory lock on its row id."""


class StateUnreadable(Exception):
    """The store's copy of an instance's state is not a state document."""


def shared(db: Database) -> bool:
    """Whether instances' state lives in the store (PostgreSQL: any host may apply)."""
    return db.dialect == "postgresql"


def workspace(template: str, name: str) -> str:
    """The instance's Terraform workspace: template and instance names hold no dot, so the
    pair is unique and a valid workspace name."""
    return f"{template}.{name}"


def backend_env(db: Database) -> dict[str, str]:
    """The ``pg`` backend's settings as Terraform reads them from its environment."""
    return {"PG_CONN_STR": conn_str(db.url), "PG_SCHEMA_NAME": SCHEMA}


def conn_str(url: sa.URL) -> str:
    """The store's URL as a libpq ``key=value`` string (Terraform's driver takes no
    SQLAlchemy URL; a Unix socket directory is the ``host``)."""
    query: Mapping[str, str | tuple[str, ...]] = url.query

    def one(key: str) -> str | None:
        value = query.get(key)
        if isinstance(value, tuple):
            return value[-1] if value else None
        return value

    parts: dict[str, str | None] = {
        "host": url.host or one("host"),
        "port": str(url.port) if url.port else one("port"),
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
        "application_name": APPLICATION,
    }
    parts.update({key: one(key) for key in PASSED})
    return " ".join(f"{key}={_quoted(value)}" for key, value in parts.items() if value)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def read_state(db: Database, template: str, name: str) -> dict[str, Any] | None:
    """The instance's Terraform state as the ``pg`` backend keeps it; None before its first
    plan (``StateUnreadable`` when the row holds no state document: never taken for empty)."""
    with db.read() as conn:
        if conn.execute(_EXISTS).scalar() is None:
            return None
        data = conn.execute(_DATA, {"name": workspace(template, name)}).scalar_one_or_none()
    if not data:
        return None
    try:
        state = json.loads(data)
    except ValueError:
        raise StateUnreadable("not valid JSON") from None
    if not isinstance(state, dict):
        raise StateUnreadable("not a state document")
    return state


def locked(db: Database, template: str, name: str) -> bool:
    """Is the instance's state locked (a Terraform session, on any host, holds its lock)?
    A session lock ends with its session: a killed Terraform leaves none behind."""
    with db.read() as conn:
        if conn.execute(_EXISTS).scalar() is None:
            return False
        return bool(conn.execute(_LOCKED, {"name": workspace(template, name)}).scalar())
