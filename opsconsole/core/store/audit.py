"""The audit trail read newest first: the only query behind ``opsconsole audit``.

Keyset-paged by event id (the primary key, which also orders events in time), so a page
never costs an OFFSET scan; ``--job`` uses the job index. Progress ticks are not audit: an
older store may hold some, and they are never listed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from opsconsole.core.store.db import Database, events

NOT_AUDIT = ("progress",)
"""Event kinds that record no one's action."""


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    actor: str | None = None
    job_id: str | None = None
    kinds: Collection[str] = field(default_factory=tuple)


def audit_query(f: AuditFilter, *, before: int | None, limit: int) -> sa.Select[Any]:
    cond: list[Any] = [events.c.kind.not_in(NOT_AUDIT)]
    if before is not None:
        cond.append(events.c.id < before)
    if f.since is not None:
        # ids grow with time: the first event since then (found on the ts index) bounds the
        # walk down the primary key, which would otherwise go on to the oldest event
        first = sa.select(events.c.id).where(events.c.ts >= f.since).order_by(events.c.ts).limit(1)
        cond += [events.c.ts >= f.since, events.c.id >= first.scalar_subquery()]
    if f.actor:
        cond.append(events.c.actor == f.actor)
    if f.job_id:
        cond.append(events.c.job_id == f.job_id)
    if f.kinds:
        cond.append(events.c.kind.in_(sorted(f.kinds)))
    return sa.select(events).where(*cond).order_by(events.c.id.desc()).limit(limit)


def audit_rows(
    db: Database, f: AuditFilter, *, before: int | None = None, limit: int = 100
) -> list[RowMapping]:
    """Events newest first; pass the last row's id as ``before`` for the next page."""
    with db.read() as conn:
        return list(conn.execute(audit_query(f, before=before, limit=limit)).mappings())
