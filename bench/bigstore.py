"""A big store for benchmarks (not tests): ``build(path_or_url, n, seed)`` fills a store with
``n`` jobs the way months of use would, fast.

    .venv/bin/python bench/bigstore.py /tmp/big.db 1000000        (about a minute per 250k)
    .venv/bin/python bench/bigstore.py postgresql://.../ops 1000000

The rows are the console benchmark's (``tui_bench.job_row``: six templates, 85% succeeded,
two audit events per job), spread over the last 30 days and inserted in the order they
finished (as a store fills), in big transactions of ``executemany`` through the store's own
tables. A few live jobs sit on top: ``scheduled`` ones due in a week (so a worker someone
starts on the store leaves them alone) and ``awaiting_approval`` ones that never expire,
so the queue listing has rows. The same ``seed`` gives the same store.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tui_bench import HISTORY_TEMPLATES, OUTCOMES, job_row

CHUNK = 20_000
"""Rows per transaction: big enough that commits cost nothing, small enough for memory."""
DAYS = 30
"""How far back the history goes."""
MEAN_SECONDS = {
    "hello": 2.0,
    "disk-report": 15.0,
    "deploy-app": 120.0,
    "sync-inventory": 60.0,
    "http-check": 1.0,
    "rotate-logs": 8.0,
}
"""Mean run time per template: percentiles differ by template, as they do in use."""


def store_url(path_or_url: str | Path) -> str:
    """A SQLite URL for a path; a URL as it is."""
    text = str(path_or_url)
    return text if "://" in text else f"sqlite:///{Path(text).resolve()}"


def _event(job_id: str, ts: datetime, kind: str, actor: str, state: str) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "ts": ts,
        "kind": kind,
        "actor": actor,
        "state": state,
        "attempt": None if kind == "submitted" else 1,
        "message": "",
        "data": None,
    }


def _trail(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each job's ``submitted`` event and its final one (a live job has only the first)."""
    out = []
    for r in jobs:
        out.append(_event(r["id"], r["created_at"], "submitted", "ops", "queued"))
        if r["finished_at"] is not None:
            out.append(_event(r["id"], r["finished_at"], r["state"], "bench:1:0000", r["state"]))
    return out


def fast_ids(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct job ids in the store's alphabet and length, in random order
    (``tui_bench.unique_ids`` draws a character at a time: too slow for millions)."""
    from opsconsole.core.ids import ALPHABET, LENGTH

    space = len(ALPHABET) ** LENGTH
    picked = rng.sample(range(space), n)
    out = []
    for v in picked:
        chars = []
        for _ in range(LENGTH):
            v, d = divmod(v, len(ALPHABET))
            chars.append(ALPHABET[d])
        out.append("".join(chars))
    return out


def rows(n: int, seed: int, now: datetime) -> Iterator[list[dict[str, Any]]]:
    """``n`` job rows (finished, plus one live job in a thousand) in chunks of ``CHUNK``,
    oldest first: chunk ``i`` holds the jobs created in the ``i``-th slice of the period."""
    rng = random.Random(seed)
    states = [s for s, w in OUTCOMES for _ in range(w)]
    ids = fast_ids(rng, n)
    span = DAYS * 86400 - 60
    for start in range(0, n, CHUNK):
        count = min(CHUNK, n - start)
        first = now - timedelta(seconds=60 + span * (1 - start / n))
        width = span * count / n
        out: list[dict[str, Any]] = []
        for job_id in ids[start : start + count]:
            template, params = rng.choice(HISTORY_TEMPLATES)
            created = first + timedelta(seconds=rng.uniform(0, width))
            if rng.random() < 0.001:
                live = rng.choice(["scheduled", "awaiting_approval"])
                row = job_row(job_id, template, live, params(rng), created, created, None)
                row.update(started_at=None, attempts=0, worker=None, result=None, progress=None)
                if live == "scheduled":
                    row["run_at"] = now + timedelta(days=7)
                out.append(row)
                continue
            state = rng.choice(states)
            started = created + timedelta(seconds=rng.uniform(0, 5))
            finished = started + timedelta(seconds=rng.expovariate(1 / MEAN_SECONDS[template]))
            out.append(job_row(job_id, template, state, params(rng), created, started, finished))
        out.sort(key=lambda r: r["finished_at"] or r["created_at"])
        yield out


def _converter(column: Any) -> Callable[[Any], Any]:
    """How the store's own type writes a value of ``column`` to SQLite, without SQLAlchemy's
    per-row bind processing (most of the time of a bulk insert): the same text it writes."""
    from sqlalchemy import JSON, Boolean

    from opsconsole.core.model import UtcDateTime

    if isinstance(column.type, UtcDateTime):
        return lambda v: None if v is None else v.astimezone(UTC).strftime(_SQLITE_TS)
    if isinstance(column.type, JSON):
        return json.dumps  # None too: the JSON type writes 'null', not NULL
    if isinstance(column.type, Boolean):
        return lambda v: None if v is None else int(v)
    return lambda v: v


_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"


def _sqlite_insert(con: sqlite3.Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) into ``table`` with one ``executemany``."""
    if not rows:
        return
    names = list(rows[0])
    convert = [_converter(table.c[name]) for name in names]
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
    values = [tuple(f(r[k]) for f, k in zip(convert, names, strict=True)) for r in rows]
    con.executemany(sql, values)


def build(path_or_url: str | Path, n: int, seed: int = 1, *, events: bool = True) -> str:
    """Make (or add to) the store at ``path_or_url`` with ``n`` more jobs; its URL.

    With ``events`` each job also gets its ``submitted`` and final event in the audit trail
    (twice the rows: the ``events`` listing and retention see a real trail).
    """
    from opsconsole.core.store.db import Database
    from opsconsole.core.store.db import events as events_table
    from opsconsole.core.store.db import jobs as jobs_table

    url = store_url(path_or_url)
    db = Database(url)
    try:
        db.ensure_schema()
        now = datetime.now(UTC) - timedelta(minutes=5)
        if db.path is not None:
            con = sqlite3.connect(db.path, timeout=60)
            try:
                con.execute("PRAGMA synchronous=OFF")  # bench data: a crash means rebuild
                con.execute("PRAGMA cache_size=-200000")
                for chunk in rows(n, seed, now):
                    with con:
                        _sqlite_insert(con, jobs_table, chunk)
                        if events:
                            _sqlite_insert(con, events_table, _trail(chunk))
            finally:
                con.close()
            return url
        for chunk in rows(n, seed, now):
            with db.write() as conn:
                conn.execute(jobs_table.insert(), chunk)
                if events:
                    conn.execute(events_table.insert(), _trail(chunk))
        if db.dialect == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE jobs")
                conn.exec_driver_sql("VACUUM ANALYZE job_events")
    finally:
        db.dispose()
    return url


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("store", help="a SQLite file path or a store URL")
    ap.add_argument("n", type=int, help="how many jobs to add")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-events", action="store_true", help="no audit events (faster)")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    url = build(args.store, args.n, args.seed, events=not args.no_events)
    print(f"{args.n:,} jobs in {url} in {time.perf_counter() - t:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
