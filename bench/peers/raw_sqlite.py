"""The raw limit on SQLite: plain ``sqlite3``, insert, claim and finish as three transactions.

The worker is one process with ``--slots`` threads, each a loop: claim the oldest queued row
(``BEGIN IMMEDIATE``; ``UPDATE ... RETURNING``), run it, mark it done; idle, it polls every
5 ms. Same pragmas as opsconsole's store (WAL, synchronous=NORMAL, a busy timeout).
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import threading
import time

from bench_marks import mark

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
    "tag TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued')",
    "CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (state, id)",
)
CLAIM = (
    "UPDATE jobs SET state = 'running' WHERE id = (SELECT id FROM jobs WHERE state = 'queued' "
    "ORDER BY id LIMIT 1) RETURNING id, kind, tag"
)


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def setup(path: str) -> None:
    conn = connect(path)
    for s in SCHEMA:
        conn.execute(s)
    conn.close()


class Submitter:
    def __init__(self, path: str) -> None:
        self.conn = connect(path)

    def submit(self, kind: str, tag: str) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO jobs (kind, tag) VALUES (?, ?)", (kind, tag))
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def loop(path: str, stop: threading.Event) -> None:
    conn = connect(path)
    while not stop.is_set():
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(CLAIM).fetchone()
        conn.execute("COMMIT")
        if row is None:
            time.sleep(0.005)
            continue
        job_id, kind, tag = row
        mark(tag, 0.05 if kind == "nap" else 0.0)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE jobs SET state = 'done' WHERE id = ?", (job_id,))
        conn.execute("COMMIT")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("db")
    ap.add_argument("--slots", type=int, default=4)
    args = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = [threading.Thread(target=loop, args=(args.db, stop)) for _ in range(args.slots)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
