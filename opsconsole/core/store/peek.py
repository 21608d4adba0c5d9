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
