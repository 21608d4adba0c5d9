"""Append log batches and read events and log lines forward from a cursor.

``job_events.id`` is the change feed's cursor; ``job_logs.seq`` is a job's log cursor.
A log batch reserves its line numbers with one guarded UPDATE, so a fenced-off attempt
writes nothing; past the per-job cap the head and tail are kept around one marker line.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from opsconsole.core.states import JobState
from opsconsole.core.store.db import Database, events, jobs, logs


def truncation_marker(dropped: int, cap: int) -> str:
    return f"[opsconsole] log truncated: {dropped} lines dropped here (log cap {cap} lines)"


def _cap_cut(total: int, cap: int) -> tuple[int, int] | None:
    """Where a log of ``total`` lines is cut: (marker line number, last dropped line number).

    Lines up to the marker's number minus one are the head; the marker line replaces the
    line of its number; lines after the last dropped one are the tail. None: keep everything.
    """
    if total <= cap:
        return None
    head = max(cap // 2, 1)
    tail = max(cap - head - 1, 1)
    marker_seq, cut_to = head + 1, total - tail
    if cut_to <= marker_seq:
        return None
    return marker_seq, cut_to


def append_logs(
    db: Database,
    job_id: str,
    attempt: int,
    lines: Sequence[tuple[datetime, str, str]],
    *,
    cap: int,
) -> bool:
    """Write (ts, stream, text) lines for a running attempt; False when fenced off.

    Past the cap only the lines that stay are inserted (a chatty job past its cap costs
    one small write per batch, not an insert and a delete of every line).
    """
    if not lines:
        return True
    n = len(lines)
    with db.write() as conn:
        total = conn.execute(
            jobs.update()
            .where(
                jobs.c.id == job_id,
                jobs.c.attempts == attempt,
                jobs.c.state == JobState.RUNNING.value,
            )
            .values(log_lines=jobs.c.log_lines + n)
            .returning(jobs.c.log_lines)
        ).scalar()
        if total is None:
            return False
        first = total - n + 1
        cut = _cap_cut(total, cap)
        rows = [
            {
                "job_id": job_id,
                "seq": first + i,
                "ts": ts,
                "attempt": attempt,
                "stream": stream,
                "line": text,
            }
            for i, (ts, stream, text) in enumerate(lines)
        ]
        if cut is not None:
            marker_seq, cut_to = cut
            marker = truncation_marker(cut_to - marker_seq + 1, cap)
            rows = [r for r in rows if r["seq"] <= marker_seq or r["seq"] > cut_to]
            for r in rows:
                if r["seq"] == marker_seq:
                    r.update(stream="meta", line=marker)
        if rows:
            conn.execute(logs.insert(), rows)
        if cut is not None:
            if marker_seq < first:  # the marker's line is stored already
                _recut(conn, job_id, marker_seq, min(cut_to, first - 1), marker)
            dropped = cut_to - marker_seq + 1
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(log_dropped=dropped))
    return True


def _recut(conn: sa.Connection, job_id: str, marker_seq: int, last: int, marker: str) -> None:
    """Drop the stored lines after the marker up to ``last``; the marker says the new count."""
    if last > marker_seq:
        conn.execute(
            logs.delete().where(
                logs.c.job_id == job_id, logs.c.seq > marker_seq, logs.c.seq <= last
            )
        )
    conn.execute(
        logs.update()
        .where(logs.c.job_id == job_id, logs.c.seq == marker_seq)
        .values(stream="meta", line=marker)
    )


def logs_since(db: Database, job_id: str, after: int, limit: int) -> list[RowMapping]:
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(logs.c.seq, logs.c.ts, logs.c.attempt, logs.c.stream, logs.c.line)
                .where(logs.c.job_id == job_id, logs.c.seq > after)
                .order_by(logs.c.seq)
                .limit(limit)
            ).mappings()
        )


def logs_before(db: Database, job_id: str, before: int | None, limit: int) -> list[RowMapping]:
    """The ``limit`` lines before ``before`` (None: the end), oldest first: tails, scroll-back."""
    cond = [logs.c.job_id == job_id]
    if before is not None:
        cond.append(logs.c.seq < before)
    with db.read() as conn:
        rows = list(
            conn.execute(
                sa.select(logs.c.seq, logs.c.ts, logs.c.attempt, logs.c.stream, logs.c.line)
                .where(*cond)
                .order_by(logs.c.seq.desc())
                .limit(limit)
            ).mappings()
        )
    rows.reverse()
    return rows


def events_since(
    db: Database, after: int, *, job_id: str | None = None, limit: int = 500
) -> list[RowMapping]:
    cond = [events.c.id > after]
    if job_id is not None:
        cond.append(events.c.job_id == job_id)
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(events).where(*cond).order_by(events.c.id).limit(limit)
            ).mappings()
        )


def recent_events(db: Database, limit: int, *, job_id: str | None = None) -> list[RowMapping]:
    """The newest ``limit`` events, oldest first."""
    q = sa.select(events).order_by(events.c.id.desc()).limit(limit)
    if job_id is not None:
        q = q.where(events.c.job_id == job_id)
    with db.read() as conn:
        rows = list(conn.execute(q).mappings())
    rows.reverse()
    return rows


def last_event_id(db: Database) -> int:
    with db.read() as conn:
        return conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0))).scalar_one()


def job_events(db: Database, job_id: str, limit: int = 1000) -> list[RowMapping]:
    """The audit trail of one job (without the progress ticks an older store may hold)."""
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(events)
                .where(events.c.job_id == job_id, events.c.kind != "progress")
                .order_by(events.c.id)
                .limit(limit)
            ).mappings()
        )


def search_logs(
    db: Database, job_id: str, text: str, *, after: int = 0, limit: int = 1000
) -> list[int]:
    """Line numbers of a job's log that contain ``text`` (case-insensitive), from ``after``."""
    needle = text.lower()
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(logs.c.seq)
                .where(
                    logs.c.job_id == job_id,
                    logs.c.seq > after,
                    sa.func.lower(logs.c.line).contains(needle, autoescape=True),
                )
                .order_by(logs.c.seq)
                .limit(limit)
            ).scalars()
        )
