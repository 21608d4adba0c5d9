"""Eight OS processes submit and claim against one SQLite file at once: no "database is
locked", every job claimed exactly once, every job succeeded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from support import wait_until, write_template

from opsconsole.core.store.db import Database, events, jobs

PROCS = 8
JOBS_EACH = 25

CHILD = r"""
import faulthandler, json, sys, time
from pathlib import Path
faulthandler.dump_traceback_later(50, exit=True)  # a hang shows where it hung

from opsconsole.config import load_settings
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store import queries
from opsconsole.core.store.db import Database

args = json.loads(sys.argv[1])
settings = load_settings(home=args["home"], catalog=args["catalog"], db=args["db"])
db = Database(settings.db)
svc = OpsService(settings, db)
me = f"proc-{args['n']}"
go = Path(args["go"])
deadline = time.monotonic() + 45
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.005)

def claim_and_finish():
    row = claim_store.claim(db, me, svc.now(), 60)
    if row is None:
        return False
    done = job_store.finish(
        db, row["id"], row["attempts"], JobState.SUCCEEDED, svc.now(), values={"exit_code": 0}
    )
    if done is None:
        sys.exit(f"finish of {row['id']} was fenced off")
    return True

for i in range(args["jobs"]):
    svc.submit(SubmitRequest(template="echo", params={"word": f"{me}-{i}"}))
    claim_and_finish()
while True:
    if claim_and_finish():
        continue
    counts = queries.counts_by_state(db)
    if sum(counts.values()) >= args["total"] and not counts.get("queued"):
        break
    if time.monotonic() > deadline:
        sys.exit(f"gave up waiting: {counts}")
    time.sleep(0.01)
db.dispose()
"""


def test_eight_processes_share_one_sqlite_file(settings, catalog: Path, tmp_path: Path):
    write_template(
        catalog, "echo", "runner: shell\ncommand: [echo, '{{ word }}']\nparams:\n  word: {}\n"
    )
    go = tmp_path / "go"
    total = PROCS * JOBS_EACH
    procs = []
    for n in range(PROCS):
        arg = {
            "home": str(settings.home),
            "catalog": str(catalog),
            "db": settings.db,
            "go": str(go),
            "n": n,
            "jobs": JOBS_EACH,
            "total": total,
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, json.dumps(arg)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        go.touch()
        wait_until(lambda: all(p.poll() is not None for p in procs), timeout=60, interval=0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    outputs = [(p.returncode, *p.communicate()) for p in procs]
    for code, _out, err in outputs:
        assert "database is locked" not in err
        assert err == ""
        assert code == 0

    db = Database(settings.db)
    try:
        with db.read() as conn:
            rows = conn.execute(sa.select(jobs.c.id, jobs.c.state, jobs.c.attempts)).all()
            started = dict(
                conn.execute(
                    sa.select(events.c.job_id, sa.func.count())
                    .where(events.c.kind == "started")
                    .group_by(events.c.job_id)
                ).all()
            )
            workers = conn.execute(
                sa.select(sa.func.count(sa.distinct(events.c.actor))).where(
                    events.c.kind == "started"
                )
            ).scalar_one()
    finally:
        db.dispose()
    assert len(rows) == total
    assert {r.state for r in rows} == {"succeeded"}
    assert {r.attempts for r in rows} == {1}
    assert len(started) == total
    assert set(started.values()) == {1}
    assert workers > 1  # the claims really were spread over several processes
