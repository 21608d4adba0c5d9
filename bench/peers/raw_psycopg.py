"""The raw limit on PostgreSQL: plain ``psycopg``, insert, claim and finish as three
transactions.

The worker is one process with ``--slots`` threads, each a loop with its own connection:
claim the oldest queued row (``FOR UPDATE SKIP LOCKED``), run it, mark it done; idle, it
polls every 5 ms.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time

import psycopg
from bench_marks import mark

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS jobs (id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, "
    "tag TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued')",
    "CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (id) WHERE state = 'queued'",
)
CLAIM = (
    "UPDATE jobs SET state = 'running' WHERE id = (SELECT id FROM jobs WHERE state = 'queued' "
    "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, kind, tag"
)


def setup(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in SCHEMA:
            conn.execute(s)


class Submitter:
    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)

    def submit(self, kind: str, tag: str) -> None:
        self.conn.execute("INSERT INTO jobs (kind, tag) VALUES (%s, %s)", (kind, tag))

    def close(self) -> None:
        self.conn.close()


def loop(dsn: str, stop: threading.Event) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute(CLAIM).fetchone()
            if row is None:
                time.sleep(0.005)
                continue
            job_id, kind, tag = row
            mark(tag, 0.05 if kind == "nap" else 0.0)
            conn.execute("UPDATE jobs SET state = 'done' WHERE id = %s", (job_id,))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dsn")
    ap.add_argument("--slots", type=int, default=4)
    args = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = [threading.Thread(target=loop, args=(args.dsn, stop)) for _ in range(args.slots)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
