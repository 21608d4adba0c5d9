"""Database roles on PostgreSQL: who may log in as whom, and in which ``opsconsole_*`` group.

The only place that grants or lists the group roles migration 0007 makes; the rules
themselves (four-eyes, the gate) live in that migration's triggers, not here. A person's
login role carries their Unix login name, so peer authentication maps them without a
password and ``session_user`` is the actor the database checks. Never used on SQLite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsconsole.core.access import Role
from opsconsole.core.errors import InvalidParams
from opsconsole.core.store.db import Database

ROLES = (*(r.label for r in Role), "worker")
"""What ``db grant --role`` accepts: opsconsole's roles, and ``worker`` for the pools."""
PREFIX = "opsconsole_"
LOGIN_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,62}")
"""A Unix login name as useradd takes it: peer authentication compares it with the role's."""

_MEMBERS = sa.text(
    """SELECT m.rolname AS login, g.rolname AS grp
    FROM pg_auth_members a
    JOIN pg_roles g ON g.oid = a.roleid
    JOIN pg_roles m ON m.oid = a.member
    WHERE g.rolname = ANY(:groups) AND m.rolcanlogin
    ORDER BY m.rolname, g.rolname"""
)


@dataclass(frozen=True)
class Grant:
    """One login role and the opsconsole role it holds."""

    login: str
    role: str


@dataclass(frozen=True)
class Session:
    """Who the store's connection is, as the rules see it."""

    login: str
    trusted: bool
    """A worker, the tables' owner or a superuser: the rules for people do not bind it."""


def _groups() -> list[str]:
    return [PREFIX + r for r in ROLES]


def _require_postgresql(db: Database) -> None:
    if db.dialect != "postgresql":
        raise InvalidParams(
            f"database roles exist on PostgreSQL only; this store is {db.describe()} "
            "(on SQLite the file's permissions and opsconsole.toml's [roles] decide)"
        )


def check_login(login: str) -> str:
    """InvalidParams unless ``login`` could be a Unix login name (and so a role name)."""
    if not LOGIN_RE.fullmatch(login):
        raise InvalidParams(
            f"invalid login '{login[:40]}': a Unix login name (lowercase letters, digits, "
            "'_', '.', '-'), as peer authentication compares it"
        )
    return login


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def grant(db: Database, login: str, role: str) -> Grant:
    """Make ``login`` a login role (without a password: peer or certificate authentication)
    holding exactly ``role`` of opsconsole's: any other opsconsole role it held is revoked."""
    _require_postgresql(db)
    check_login(login)
    if role not in ROLES:
        raise InvalidParams(f"unknown role '{role[:30]}' (known: {', '.join(ROLES)})")
    with db.write() as conn:
        missing = [
            g
            for g in _groups()
            if conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :g"), {"g": g}).first()
            is None
        ]
        if missing:
            raise InvalidParams(
                f"the group role {missing[0]} does not exist: run 'opsconsole db upgrade' "
                "once as a role that may create roles"
            )
        who = _quote(conn, login)
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": login}
        ).first()
        if exists is None:
            conn.execute(sa.text(f"CREATE ROLE {who} LOGIN"))
        for held in _members(conn):
            if held.login == login and held.role != role:
                conn.execute(sa.text(f"REVOKE {PREFIX}{held.role} FROM {who}"))
        conn.execute(sa.text(f"GRANT {PREFIX}{role} TO {who}"))
    return Grant(login, role)


def revoke(db: Database, login: str) -> list[str]:
    """Take every opsconsole role from ``login`` (the login role itself stays: it may own
    things); the roles it held."""
    _require_postgresql(db)
    check_login(login)
    with db.write() as conn:
        held = [g.role for g in _members(conn) if g.login == login]
        who = _quote(conn, login)
        for role in held:
            conn.execute(sa.text(f"REVOKE {PREFIX}{role} FROM {who}"))
    return held


def _members(conn: Connection) -> list[Grant]:
    return [
        Grant(row.login, row.grp.removeprefix(PREFIX))
        for row in conn.execute(_MEMBERS, {"groups": _groups()})
    ]


def members(db: Database) -> list[Grant]:
    """Every login role holding an opsconsole role, by login."""
    _require_postgresql(db)
    with db.read() as conn:
        return _members(conn)


def session(db: Database) -> Session:
    """Who this store's connections are (``session_user``), and whether the rules trust it."""
    _require_postgresql(db)
    with db.read() as conn:
        login = conn.execute(sa.text("SELECT session_user")).scalar_one()
        trusted = conn.execute(sa.text("SELECT opsconsole_trusted()")).scalar_one()
    return Session(str(login), bool(trusted))
