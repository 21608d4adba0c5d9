"""The reaper: settles running jobs whose worker vanished.

A worker is gone when its process is dead on this host, or when it stopped heartbeating
for a lease. What is left of its jobs on this host is killed first (by the job marker in
the environment, so escaped descendants go too); then each job ends per ``on_interrupt``,
unless an operator had asked to cancel it.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from opsconsole.core.errors import OpsError
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import feed
from opsconsole.engine.context import RunResult
from opsconsole.engine.procs import kill_marked, pid_alive

if TYPE_CHECKING:
    from opsconsole.engine.pool import WorkerPool


def reap(pool: WorkerPool, now: datetime) -> int:
    """One pass; returns how many jobs it settled."""
    db, settings = pool.db, pool.settings
    dead = [
        w["id"]
        for w in claim_store.workers_on_host(db, pool.host)
        if w["id"] != pool.id and w["pid"] != os.getpid() and not pid_alive(w["pid"])
    ]
    stale = [
        w["id"]
        for w in claim_store.stale_workers(db, now - timedelta(seconds=settings.lease))
        if w["id"] != pool.id
    ]
    gone = sorted(set(dead + stale))
    claim_store.mark_workers_dead(db, gone, now)
    settled = 0
    for job in claim_store.orphaned_jobs(db, now, gone):
        if job["worker"] == pool.id:
            continue
        if (job["worker"] or "").rsplit(":", 2)[0] == pool.host:
            kill_marked(f"{job['id']}.{job['attempts']}", grace=settings.kill_grace)
        why = f"worker {job['worker']} vanished"
        with contextlib.suppress(OpsError):
            feed.append_logs(
                db,
                job["id"],
                job["attempts"],
                [(now, "meta", f"attempt {job['attempts']} interrupted: {why}")],
                cap=settings.log_cap,
            )
        outcome, message = "interrupted", why
        if job["cancel_requested"]:  # asked of the vanished worker: never requeue it
            outcome = "cancelled"
            message = f"{job['cancel_reason'] or 'cancelled'} ({why})"
        row = {
            "id": job["id"],
            "attempts": job["attempts"],
            "on_interrupt": job["on_interrupt"],
            "max_retries": 0,
            "backoff_s": 0,
        }
        error = {"message": message, "kind": outcome, "detail": {"worker": job["worker"]}}
        pool._finish(row, RunResult(outcome=outcome, error=error), None)
        settled += 1
    return settled
