"""Terraform instances in the store: the row each instance keeps (status, outputs, serial).

The only place that reads or writes ``instances``. Where the Terraform state itself lives is
``core/instances.py``'s business; this is what the faces list and what the last run left.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from opsconsole.core.store.db import Database, instances

FIELDS = ("status", "last_job", "serial", "plan_hash", "outputs", "resources", "problem")


def upsert(db: Database, template: str, name: str, now: datetime, **values: Any) -> RowMapping:
    """Create the instance row or update the given fields; returns the row as stored."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown instance fields: {sorted(unknown)}")
    key = (instances.c.template == template, instances.c.name == name)
    with db.write() as conn:
        current = conn.execute(sa.select(instances).where(*key)).mappings().first()
        if current is None:
            conn.execute(
                instances.insert().values(
                    template=template,
                    name=name,
                    status=values.pop("status", "new"),
                    created_at=now,
                    updated_at=now,
                    **values,
                )
            )
        elif values:
            conn.execute(instances.update().where(*key).values(updated_at=now, **values))
        return conn.execute(sa.select(instances).where(*key)).mappings().one()


def get(db: Database, template: str, name: str) -> RowMapping | None:
    with db.read() as conn:
        return (
            conn.execute(
                sa.select(instances).where(
                    instances.c.template == template, instances.c.name == name
                )
            )
            .mappings()
            .first()
        )


def named(db: Database, name: str) -> list[RowMapping]:
    """Every instance called ``name`` (one per template at most)."""
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(instances).where(instances.c.name == name).order_by(instances.c.template)
            ).mappings()
        )


def list_all(db: Database, template: str | None = None) -> list[RowMapping]:
    q = sa.select(instances).order_by(instances.c.template, instances.c.name)
    if template is not None:
        q = q.where(instances.c.template == template)
    with db.read() as conn:
        return list(conn.execute(q).mappings())
