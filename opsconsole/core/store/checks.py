"""Checks in the store: the only place a check's result is written and its statuses read.

A check job's end is recorded in the transaction that finishes the job (``record_end``,
called by ``jobs.transition``), so a status is never lost between the two and a
``check.changed`` event is written exactly once per change.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from opsconsole.core.catalog.check import STATUSES, is_check, split_plugin_line, status_of_exit
from opsconsole.core.store.db import Database, check_results, checks, logs

CHANGED = "check.changed"
OUTPUT_MAX = 500
"""Characters of a result's summary kept: one line, as a plugin's first line is."""
UNRECORDED = frozenset({"cancelled", "rejected", "interrupted"})
"""Ends that say nothing of what the check looks at (an operator's decision, a worker that
stopped under it): no result is recorded, so a worker's restart never flips a status."""


def record_end(conn: Connection, row: Mapping[str, Any], now: datetime, actor: str = "") -> None:
    """Record a finished check job's result; nothing for a job that is not a check.

    Only a final end counts: a failed attempt with retries left goes back to ``scheduled``,
    so a template's ``retries`` re-check before a status changes (Nagios' soft states).
    """
    if not is_check(row["spec"]) or row["dry_run"] or not row["attempts"]:
        return
    if row["state"] in UNRECORDED:
        return
    name = row["schedule"] or row["template"]
    status, output, latency = verdict(conn, row)
    prev = _current(conn, name)
    conn.execute(
        check_results.insert().values(
            check=name, job_id=row["id"], at=now, status=status, latency_ms=latency, output=output
        )
    )
    values = {
        "template": row["template"],
        "status": status,
        "output": output,
        "latency_ms": latency,
        "last_job": row["id"],
        "last_at": now,
    }
    if prev is None:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(checks).values(name=name, since=now, **values)
        done = conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
        if done.rowcount == 0:  # another store client's first result of it landed meanwhile
            prev = _current(conn, name)
    if prev is not None:
        if prev["status"] != status:
            values["since"] = now
        conn.execute(checks.update().where(checks.c.name == name).values(**values))
    # a new check is presumed ok (as Nagios does): one that starts ok is no news
    before = prev["status"] if prev is not None else None
    if (before or "ok") != status:
        from opsconsole.core.store.jobs import add_event  # jobs imports this module

        add_event(
            conn,
            row["id"],
            CHANGED,
            now,
            actor=actor,
            state=row["state"],
            attempt=row["attempts"],
            message=f"check {name}: {before or 'new'} -> {status}: {output}"[:500],
            data={"check": name, "from": before, "to": status, "output": output},
        )


def _current(conn: Connection, name: str) -> RowMapping | None:
    """A check's row, locked on PostgreSQL so two of its results are written one after the
    other (SQLite's writers are serialised already)."""
    q = sa.select(checks).where(checks.c.name == name).with_for_update()
    return conn.execute(q).mappings().first()


def verdict(conn: Connection, row: Mapping[str, Any]) -> tuple[str, str, float | None]:
    """A finished check job's status, one-line output and latency.

    A handler says its status in its result; a shell plugin says it with its exit code and
    its first output line; a job that ended without saying (it crashed, timed out, was
    interrupted) is ``unknown`` with the reason.
    """
    result = row["result"]
    if isinstance(result, dict) and result.get("status") in STATUSES:
        latency = result.get("latency_ms")
        latency = float(latency) if isinstance(latency, int | float) else None
        return result["status"], _line(str(result.get("summary") or "")), latency
    state = row["state"]
    runner = (row["spec"] or {}).get("runner", "shell")
    ran = state in ("succeeded", "partial", "failed") and row["exit_code"] is not None
    if runner == "shell" and ran:
        summary, _ = split_plugin_line(first_line(conn, row["id"], row["attempts"]))
        return status_of_exit(row["exit_code"]), _line(summary), _took(row)
    why = (row["error"] or {}).get("message") if isinstance(row["error"], dict) else None
    return (
        "unknown",
        _line(f"the check ended {state.replace('_', ' ')}: {why or 'no status'}"),
        None,
    )


def first_line(conn: Connection, job_id: str, attempt: int) -> str:
    """An attempt's first line of standard output (the primary key's order), or ''."""
    line = conn.execute(
        sa.select(logs.c.line)
        .where(
            logs.c.job_id == job_id,
            logs.c.attempt == attempt,
            logs.c.stream == "out",
        )
        .order_by(logs.c.seq)
        .limit(1)
    ).scalar()
    return str(line or "")


def _took(row: Mapping[str, Any]) -> float | None:
    """A plugin's latency: how long its attempt ran, in ms (its own measure of the target)."""
    started, finished = row["started_at"], row["finished_at"]
    if started is None or finished is None:
        return None
    return round((finished - started).total_seconds() * 1000, 1)


def _line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:OUTPUT_MAX]


def list_checks(db: Database) -> list[RowMapping]:
    """Every check's current status, by name (one row per check: a small table)."""
    with db.read() as conn:
        return list(conn.execute(sa.select(checks).order_by(checks.c.name)).mappings())


def get_check(db: Database, name: str) -> RowMapping | None:
    with db.read() as conn:
        return conn.execute(sa.select(checks).where(checks.c.name == name)).mappings().first()


def recent_results(db: Database, names: list[str], limit: int) -> dict[str, list[RowMapping]]:
    """Each named check's last ``limit`` results, oldest first (index ``(check, id)``)."""
    out: dict[str, list[RowMapping]] = {}
    with db.read() as conn:
        for name in names:
            rows = list(
                conn.execute(
                    sa.select(check_results)
                    .where(check_results.c.check == name)
                    .order_by(check_results.c.id.desc())
                    .limit(limit)
                ).mappings()
            )
            out[name] = rows[::-1]
    return out
