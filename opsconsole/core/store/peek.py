"""A glance into a SQLite store with the standard library alone, for shell completion.

Completion runs on every Tab and must answer at once: no SQLAlchemy, no ORM, no schema
check, and never a write. This module imports only ``sqlite3``, opens the file read-only
(``mode=ro``: a missing file is an error, never a new store) and reads job ids. Anything
that goes wrong raises ``sqlite3.Error`` or ``OSError``; the caller offers nothing then.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, unquote

LIVE_ORDER = ("running", "awaiting_approval", "queued", "waiting", "scheduled")
"""Live states, in the order completion offers their jobs: what an operator acts on first."""
PEEK_TIMEOUT = 0.5
"""Seconds to wait for a store another process is rewriting (a checkpoint) before giving up."""


class JobRef(NamedTuple):
    """A job as completion shows it: its id, with its template and state as the hint."""

    id: str
    template: str
    state: str


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` store URL, read without SQLAlchemy; None otherwise.

    In-memory stores and ``file:`` URIs are None: there is no file to glance into.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] != "sqlite" or not rest.startswith("/"):
        return None
    db = unquote(rest[1:].split("?", 1)[0])
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def job_refs(path: Path, prefix: str = "", *, live: int = 50, finished: int = 30) -> list[JobRef]:
    """Up to ``live`` live jobs then ``finished`` recently finished ones whose id starts
    with ``prefix``: running first, then awaiting approval, queued, waiting, scheduled
    (newest first in each), then the finished ones, most recently finished first."""
    uri = f"file:{quote(str(path))}?mode=ro"
    upper = prefix + "\U0010ffff"  # ids sort by code point: a range the primary key serves
    marks = ",".join("?" * len(LIVE_ORDER))
    rank = " ".join(f"WHEN ? THEN {i}" for i in range(len(LIVE_ORDER)))
    conn = sqlite3.connect(uri, uri=True, timeout=PEEK_TIMEOUT)
    try:
        conn.execute("PRAGMA query_only=ON")
        rows: list[JobRef] = []
        if live > 0:
            rows += map(
                JobRef._make,
                conn.execute(
                    f"SELECT id, template, state FROM jobs WHERE state IN ({marks}) "
                    f"AND id >= ? AND id < ? ORDER BY CASE state {rank} END, created_at DESC "
                    "LIMIT ?",
                    (*LIVE_ORDER, prefix, upper, *LIVE_ORDER, live),
                ),
            )
        if finished > 0:
            rows += map(
                JobRef._make,
                conn.execute(
                    f"SELECT id, template, state FROM jobs WHERE state NOT IN ({marks}) "
                    "AND id >= ? AND id < ? ORDER BY finished_at DESC, id DESC LIMIT ?",
                    (*LIVE_ORDER, prefix, upper, finished),
                ),
            )
        return rows
    finally:
        conn.close()


class ScheduleRef(NamedTuple):
    """A schedule as completion shows it: its name, with its template and times as hint."""

    name: str
    template: str
    when: str


def schedule_refs(path: Path, prefix: str = "", *, limit: int = 100) -> list[ScheduleRef]:
    """Schedules whose name starts with ``prefix``, by name (the primary key's order)."""
    uri = f"file:{quote(str(path))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=PEEK_TIMEOUT)
    try:
        conn.execute("PRAGMA query_only=ON")
        rows = conn.execute(
            "SELECT name, template, cron, tz, every_s FROM schedules "
            "WHERE substr(name, 1, ?) = ? ORDER BY name LIMIT ?",
            (len(prefix), prefix, limit),
        ).fetchall()
    except sqlite3.OperationalError:  # a store older than schedules
        return []
    finally:
        conn.close()
    return [
        ScheduleRef(name, template, f"{cron} ({tz})" if cron else f"every {every_s:g}s")
        for name, template, cron, tz, every_s in rows
    ]


class InstanceRef(NamedTuple):
    """A Terraform instance as completion shows it: what to type, with its status as hint."""

    ref: str
    """``NAME``, or ``TEMPLATE/NAME`` when several templates have an instance of that name."""
    template: str
    status: str


def instance_refs(path: Path, prefix: str = "", *, limit: int = 100) -> list[InstanceRef]:
    """Instances whose name (or ``TEMPLATE/NAME``) starts with ``prefix``, by name.

    The instances table holds one row per template and instance name: small enough to read
    in one query; a name two templates share is offered as ``TEMPLATE/NAME`` for each.
    """
    uri = f"file:{quote(str(path))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=PEEK_TIMEOUT)
    try:
        conn.execute("PRAGMA query_only=ON")
        rows = conn.execute(
            "SELECT template, name, status FROM instances ORDER BY name, template LIMIT ?",
            (limit * 4,),
        ).fetchall()
    finally:
        conn.close()
    return instance_completions(rows, prefix, limit=limit)


def instance_completions(
    rows: list[tuple[str, str, str]], prefix: str, *, limit: int = 100
) -> list[InstanceRef]:
    """What completion offers for (template, name, status) rows sorted by name, template:
    the same whichever store they came from."""
    uses: dict[str, int] = {}
    for _, name, _ in rows:
        uses[name] = uses.get(name, 0) + 1
    out = []
    for template, name, status in rows:
        ref = name if uses[name] == 1 else f"{template}/{name}"
        if ref.startswith(prefix) or f"{template}/{name}".startswith(prefix):
            out.append(
                InstanceRef(ref if "/" not in prefix else f"{template}/{name}", template, status)
            )
    return out[:limit]


def check_names(path: Path, prefix: str = "", *, limit: int = 100) -> list[tuple[str, str]]:
    """Checks whose name starts with ``prefix``, each with its status, by name (one row per
    check: the primary key's range)."""
    uri = f"file:{quote(str(path))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=PEEK_TIMEOUT)
    try:
        conn.execute("PRAGMA query_only=ON")
        rows = conn.execute(
            "SELECT name, status FROM checks WHERE name >= ? ORDER BY name LIMIT ?",
            (prefix, limit),
        ).fetchall()
    finally:
        conn.close()
    return [(name, status) for name, status in rows if name.startswith(prefix)]
