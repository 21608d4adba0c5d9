"""Freezes in the store: set, lift, list, and the condition the claim uses to skip frozen jobs.

The only place that says which jobs a freeze matches, in SQL (``frozen_clause``, part of the
claim's own statement) and in Python (``matches``, for saying why a listed job waits). A
freeze is audited as an event with an empty job id (the events table requires one, and a
freeze is about no single job): kinds ``freeze`` and ``freeze_lifted``, the freeze's id and
scope in ``data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from opsconsole.core.errors import InvalidTransition, NotFound
from opsconsole.core.store.db import Database, freezes, jobs
from opsconsole.core.store.jobs import NO_JOB, add_event

SCOPES = ("all", "tag", "team", "key")


def _active(now: datetime) -> Any:
    return sa.and_(
        freezes.c.lifted_at.is_(None), sa.or_(freezes.c.until.is_(None), freezes.c.until > now)
    )


def frozen_clause(now: datetime, dialect: str) -> Any:
    """True for a ``jobs`` row an active freeze matches (correlated to the outer ``jobs``).

    A tag is stored as ``,a,b,``: a freeze of tag T matches a job whose tags contain ``,T,``,
    found with ``instr``/``strpos`` so that ``%`` or ``_`` in a tag are plain characters.
    """
    needle = sa.literal(",") + freezes.c.value + sa.literal(",")
    find = sa.func.strpos if dialect == "postgresql" else sa.func.instr
    has_tag = find(jobs.c.tags, needle) > 0
    match = sa.or_(
        freezes.c.scope == "all",
        sa.and_(freezes.c.scope == "team", freezes.c.value == jobs.c.team),
        sa.and_(freezes.c.scope == "key", freezes.c.value == jobs.c.concurrency_key),
        sa.and_(freezes.c.scope == "tag", has_tag),
    )
    return sa.exists(sa.select(freezes.c.id).where(_active(now), match).correlate(jobs))


def matches(freeze: Mapping[str, Any], job: Mapping[str, Any]) -> bool:
    """Does ``freeze`` hold ``job`` (a job row or view as a mapping)? Same rule as the SQL."""
    scope, value = freeze["scope"], freeze["value"]
    if scope == "all":
        return True
    if scope == "team":
        return job.get("team") == value
    if scope == "key":
        return job.get("concurrency_key") == value
    tags = job.get("tags") or ""
    if isinstance(tags, str):
        return f",{value}," in tags
    return value in tags


def create(
    db: Database,
    *,
    scope: str,
    value: str | None,
    reason: str,
    until: datetime | None,
    actor: str,
    now: datetime,
) -> RowMapping:
    with db.write() as conn:
        row = (
            conn.execute(
                freezes.insert()
                .values(
                    scope=scope,
                    value=value,
                    reason=reason,
                    created_by=actor,
                    created_at=now,
                    until=until,
                )
                .returning(freezes)
            )
            .mappings()
            .one()
        )
        add_event(
            conn,
            NO_JOB,
            "freeze",
            now,
            actor=actor,
            message=f"freeze {row['id']} ({describe(row)}): {reason}",
            data={
                "freeze": row["id"],
                "scope": scope,
                "value": value,
                "reason": reason,
                "until": until.isoformat() if until else None,
            },
        )
        return row


def lift(db: Database, freeze_id: int, *, reason: str, actor: str, now: datetime) -> RowMapping:
    """End a freeze now; InvalidTransition when it already ended (lifted or past its end)."""
    with db.write() as conn:
        row = conn.execute(sa.select(freezes).where(freezes.c.id == freeze_id)).mappings().first()
        if row is None:
            raise NotFound(f"no freeze {freeze_id}")
        if row["lifted_at"] is not None:
            raise InvalidTransition(f"freeze {freeze_id} was already lifted by {row['lifted_by']}")
        if row["until"] is not None and row["until"] <= now:
            raise InvalidTransition(f"freeze {freeze_id} already ended at its --until time")
        out = (
            conn.execute(
                freezes.update()
                .where(freezes.c.id == freeze_id, freezes.c.lifted_at.is_(None))
                .values(lifted_by=actor, lifted_at=now)
                .returning(freezes)
            )
            .mappings()
            .one()
        )
        add_event(
            conn,
            NO_JOB,
            "freeze_lifted",
            now,
            actor=actor,
            message=f"freeze {freeze_id} ({describe(out)}) lifted"
            + (f": {reason}" if reason else ""),
            data={
                "freeze": freeze_id,
                "scope": out["scope"],
                "value": out["value"],
                "reason": reason,
            },
        )
        return out


def list_freezes(
    db: Database, now: datetime, *, include_ended: bool, limit: int = 500
) -> list[RowMapping]:
    """Active freezes oldest first; with ``include_ended``, ended ones too, newest first."""
    q = sa.select(freezes)
    if include_ended:
        q = q.order_by(freezes.c.id.desc())
    else:
        q = q.where(_active(now)).order_by(freezes.c.id)
    with db.read() as conn:
        return list(conn.execute(q.limit(limit)).mappings())


def describe(row: Mapping[str, Any]) -> str:
    """``all jobs``, ``tag nightly``, ``team web``, ``key db-main``."""
    return "all jobs" if row["scope"] == "all" else f"{row['scope']} {row['value']}"
