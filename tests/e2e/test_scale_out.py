"""Several worker hosts on one PostgreSQL queue: 4 worker processes (each its own host
identity) x 8 slots over 5,000 short jobs.

What it proves, from evidence outside the store where it can: every job ran exactly once
(each run appends a line to its host's own file), runs of a limit-1 key never overlap
(the runs' own clock readings), no dependent is left waiting, and a follower of the event
feed that reads while the jobs run sees every event exactly once.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_support import worker_env
from support import wait_until, write_template

from opsconsole.config import Settings, load_settings
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.store import feed
from opsconsole.core.store.db import Database, events, jobs

BIN = Path(sys.executable).parent / "opsconsole"
HOSTS = 4
SLOTS = 8
JOBS = 5000
KEYS = 20
"""Limit-1 keys: every tenth job holds one, and sleeps a little so overlaps could happen."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # 5,000 jobs: minutes on 2 cores

HANDLER = """
import os, time

def run(ctx):
    start = time.time_ns()
    if ctx.params.get("key"):
        time.sleep(0.005)
    end = time.time_ns()
    with open(os.environ["SCALE_RUNS"], "a") as fh:
        fh.write(f"{ctx.job_id} {ctx.attempt} {ctx.params.get('key', '')} {start} {end}\\n")
    return {"ok": True}
"""


def _env(settings: Settings, host: int, runs: Path) -> dict[str, str]:
    return worker_env(
        settings,
        OPSCONSOLE_HEARTBEAT_INTERVAL="0.5",
        OPSCONSOLE_POLL_INTERVAL="0.2",
        OPSCONSOLE_HOST_ID=f"scale-host-{host}",
        SCALE_RUNS=str(runs),
    )


class Follower(threading.Thread):
    """Reads the event feed forward from a cursor while the jobs run, as `events --follow`."""

    def __init__(self, db: Database) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.seen: list[int] = []
        self.cursor = 0
        self.done = threading.Event()

    def poll(self) -> None:
        for row in feed.events_since(self.db, self.cursor, limit=1000):
            self.seen.append(row["id"])
            self.cursor = row["id"]

    def run(self) -> None:
        while not self.done.is_set():
            self.poll()
            self.done.wait(0.02)


def test_four_hosts_run_five_thousand_jobs_each_exactly_once(
    pg_url: str, home: Path, catalog: Path, tmp_path: Path
) -> None:
    (catalog / "scale_handler.py").write_text(HANDLER)
    write_template(catalog, "tick", "runner: python\nhandler: scale_handler:run\nisolate: false\n")
    write_template(
        catalog,
        "keyed",
        "runner: python\nhandler: scale_handler:run\nisolate: false\n"
        "params:\n  key: {type: string, required: true}\n"
        'concurrency: {key: "k-{{ key }}", limit: 1}\n',
    )
    settings = load_settings(home=home, catalog=catalog, db=pg_url)
    db = Database(pg_url)
    db.ensure_schema()
    service = OpsService(settings, db)
    follower = Follower(Database(pg_url))
    follower.start()

    ids: list[str] = []
    dependents: list[str] = []
    for i in range(JOBS):
        if i % 10 == 0:
            req = SubmitRequest("keyed", params={"key": f"{i // 10 % KEYS}"})
        elif i % 50 == 1 and len(ids) >= 2:  # waits on the two jobs before it
            req = SubmitRequest("tick", after=(ids[-1], ids[-2]))
        else:
            req = SubmitRequest("tick")
        job = service.submit(req)
        ids.append(job.id)
        if req.after:
            dependents.append(job.id)

    runs = [tmp_path / f"runs-{h}.txt" for h in range(HOSTS)]
    logs = [tmp_path / f"worker-{h}.log" for h in range(HOSTS)]
    procs = []
    for h in range(HOSTS):
        with logs[h].open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [str(BIN), "worker", "--workers", str(SLOTS)],
                    env=_env(settings, h, runs[h]),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )

    def finished() -> int:
        with db.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(jobs.c.finished_at.is_not(None))
                ).scalar_one()
            )

    try:
        wait_until(lambda: finished() >= JOBS, timeout=600)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
        follower.done.set()
        follower.join(timeout=30)
    tails = "\n".join(f"-- {p}\n{p.read_text()[-1500:]}" for p in logs)
    assert all(p.returncode == 0 for p in procs), tails

    # every job ran exactly once, on some host, in its first attempt
    lines = [line.split() for r in runs if r.exists() for line in r.read_text().splitlines()]
    counts = Counter(parts[0] for parts in lines)
    assert set(counts) == set(ids), tails
    assert max(counts.values()) == 1
    assert {parts[1] for parts in lines} == {"1"}
    assert sum(1 for r in runs if r.exists() and r.stat().st_size) == HOSTS  # all hosts worked

    # limit-1 keys never overlapped
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for parts in lines:
        if len(parts) == 5:
            spans[parts[2]].append((int(parts[3]), int(parts[4])))
    assert len(spans) == KEYS
    for key, runs_of_key in spans.items():
        runs_of_key.sort()
        for (_s1, e1), (s2, _e2) in itertools.pairwise(runs_of_key):
            assert s2 >= e1, f"key {key}: two runs overlapped"

    # no dependent left waiting: every job succeeded
    with db.read() as conn:
        states = Counter(conn.execute(sa.select(jobs.c.state)).scalars())
        all_events = sorted(conn.execute(sa.select(events.c.id)).scalars())
    assert states == {"succeeded": JOBS}, states
    assert dependents

    # the follower saw every event exactly once, reading while they were written
    follower.poll()
    assert Counter(follower.seen).most_common(1)[0][1] == 1
    assert follower.seen == all_events
    db.dispose()
    follower.db.dispose()
