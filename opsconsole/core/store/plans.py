"""Saved Terraform plans in the store: what an approver is shown and what the apply runs.

The only place that reads or writes ``plans``. ``summary`` has this shape (written by the
Terraform runner from ``terraform show -json``; read by the approval views)::

    {"add": 2, "change": 0, "destroy": 1, "replace": 0,
     "resources": [{"address": "terraform_data.web", "action": "create"}, ...],
     "outputs": {"url": {"action": "create", "sensitive": false}}}

``action`` is one of create, update, delete, replace, read, no-op.

``content`` is the plan file itself, sealed with the store's secret key, kept when the
instance's state is shared (PostgreSQL) so that another host may apply it; it is read only
by the apply (``content``), never with the listings, and dropped once the plan is no longer
pending (only a pending plan is ever applied).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from opsconsole.core.store.db import Database, plans

STATUSES = ("pending", "applied", "stale", "discarded", "failed")


def add(
    db: Database,
    *,
    job_id: str,
    attempt: int,
    round_: int,
    template: str,
    instance: str,
    hash_: str,
    summary: dict[str, Any],
    file: str,
    now: datetime,
    content: bytes | None = None,
) -> int:
    """Record a new pending plan; earlier pending plans of the job are discarded."""
    with db.write() as conn:
        discard_pending(conn, job_id, now)
        res = conn.execute(
            plans.insert().values(
                job_id=job_id,
                attempt=attempt,
                round=round_,
                template=template,
                instance=instance,
                hash=hash_,
                summary=summary,
                file=file,
                content=content,
                status="pending",
                created_at=now,
            )
        )
        return int(res.inserted_primary_key[0])


def discard_pending(conn: Connection, job_id: str, now: datetime) -> None:
    """Mark the job's pending plans ``discarded``, in the caller's transaction: a newer plan
    replaces them, or the job was rejected, withdrawn or expired and will never apply them."""
    conn.execute(
        plans.update()
        .where(plans.c.job_id == job_id, plans.c.status == "pending")
        .values(status="discarded", decided_at=now, content=None)
    )


SHOWN = [c for c in plans.c if c.name != "content"]
"""Every column but the sealed file, which only the apply reads."""


def latest(db: Database, job_id: str) -> RowMapping | None:
    """The job's newest plan, whatever its status (without its sealed file)."""
    with db.read() as conn:
        return (
            conn.execute(
                sa.select(*SHOWN)
                .where(plans.c.job_id == job_id)
                .order_by(plans.c.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )


def content(db: Database, plan_id: int) -> bytes | None:
    """The plan's sealed file, or None when only the planning host has it."""
    with db.read() as conn:
        value = conn.execute(
            sa.select(plans.c.content).where(plans.c.id == plan_id)
        ).scalar_one_or_none()
    return bytes(value) if value is not None else None


def set_status(db: Database, plan_id: int, status: str, now: datetime) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown plan status {status!r}")
    with db.write() as conn:
        conn.execute(
            plans.update()
            .where(plans.c.id == plan_id)
            .values(status=status, decided_at=now, content=None)
        )
