"""The Ansible hosts grid in the store: one row per (attempt, task, host), upserted live.

The Ansible runner writes cells as its event stream arrives (a task starting on a host
writes ``running``, its result overwrites it); ``jobs hosts`` and the console read the grid
of one attempt. The only place that reads or writes ``host_tasks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping

from opsconsole.core.store.db import Database, host_tasks

CELL_KEYS = ("seq", "host", "play", "task", "status", "msg", "started_at", "ended_at")
"""What a cell given to ``record`` may carry (``seq``, ``host`` and ``status`` are required)."""

_UPDATED = ("play", "task", "status", "msg", "started_at", "ended_at")


def _insert(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(host_tasks)
    return sqlite.insert(host_tasks)


def record(db: Database, job_id: str, attempt: int, cells: Sequence[Mapping[str, Any]]) -> None:
    """Write a batch of cells in one transaction; a cell already there is overwritten.

    A cell's ``started_at`` is kept when the update does not carry one, so a result written
    after its ``running`` cell keeps when the task started on that host.
    """
    if not cells:
        return
    rows = [
        {
            "job_id": job_id,
            "attempt": attempt,
            "play": "",
            "task": "",
            "msg": "",
            "started_at": None,
            "ended_at": None,
            **{k: v for k, v in cell.items() if k in CELL_KEYS},
        }
        for cell in cells
    ]
    stmt = _insert(db.dialect)
    stmt = stmt.on_conflict_do_update(
        index_elements=["job_id", "attempt", "seq", "host"],
        set_={
            **{k: stmt.excluded[k] for k in _UPDATED if k != "started_at"},
            "started_at": sa.func.coalesce(host_tasks.c.started_at, stmt.excluded.started_at),
        },
    )
    with db.write() as conn:
        conn.execute(stmt, rows)


def latest_attempt(db: Database, job_id: str) -> int | None:
    """The newest attempt of ``job_id`` that wrote any cell, or None."""
    with db.read() as conn:
        return conn.execute(
            sa.select(sa.func.max(host_tasks.c.attempt)).where(host_tasks.c.job_id == job_id)
        ).scalar_one_or_none()


def grid(db: Database, job_id: str, attempt: int) -> list[RowMapping]:
    """Every cell of one attempt, by task order then host."""
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(host_tasks)
                .where(host_tasks.c.job_id == job_id, host_tasks.c.attempt == attempt)
                .order_by(host_tasks.c.seq, host_tasks.c.host)
            ).mappings()
        )
