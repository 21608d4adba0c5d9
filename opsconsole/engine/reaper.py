"""The reaper: settles running jobs that no live worker holds.

A job is orphaned when its worker is gone (its process is dead on this machine, or it
stopped heartbeating for a lease), or when its lease ran out: a worker renews only the runs
it holds, so a row it owns but lost track of (a slot that died, an end it could not write)
is reaped like any other, by whichever worker looks first, this one included. What is
left of a job on this machine is killed first. A job of another machine is that machine's
to settle while any worker there heartbeats (only there can its processes be made sure
gone); once none does, the whole machine is dead and any worker settles its jobs. Each job
then ends per ``on_interrupt``, unless an operator had asked to cancel it. A vanished
worker's row names the jobs it was running, and each job names the worker and the jobs
that went down with it. Every time here is the store's (the pool's corrected clock).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opsconsole.config import Settings
from opsconsole.core.errors import OpsError
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import feed
from opsconsole.core.store.claim import WORKER_ROWS_KEPT
from opsconsole.core.store.db import Database
from opsconsole.engine.context import RunResult
from opsconsole.engine.outcome import VANISHED
from opsconsole.engine.procs import kill_marked, pid_alive
from opsconsole.engine.recorder import Recorder


@dataclass
class Reaper:
    """One worker's reaper; ``held`` tells which (job, attempt) runs that worker holds."""

    db: Database
    settings: Settings
    worker_id: str
    host_id: str
    """This machine (``core/hostid.py``): only its workers' processes can be checked here."""
    held: Callable[[], set[tuple[str, int]]]
    recorder: Recorder

    def reap(self, now: datetime) -> int:
        """One pass; returns how many jobs it settled."""
        db, settings = self.db, self.settings
        dead = [
            w["id"]
            for w in claim_store.workers_on_host(db, self.host_id)
            if w["id"] != self.worker_id and w["pid"] != os.getpid() and not pid_alive(w["pid"])
        ]
        fresh_since = now - timedelta(seconds=settings.lease)
        others = claim_store.live_hosts(db, fresh_since) - {self.host_id}
        stale = [
            w["id"]
            for w in claim_store.stale_workers(db, fresh_since)
            if w["id"] != self.worker_id and w["host_id"] not in others
        ]
        gone = sorted(set(dead + stale))
        held = self.held()
        orphans = [
            job
            for job in claim_store.orphaned_jobs(db, now, gone)
            if not (job["worker"] == self.worker_id and (job["id"], job["attempts"]) in held)
            and job["host_id"] not in others
        ]
        by_worker: dict[str, list[Any]] = defaultdict(list)
        for job in orphans:
            by_worker[job["worker"] or "?"].append(job)
        claim_store.mark_workers_dead(
            db,
            {w: _vanished(w, by_worker.get(w, [])) for w in gone},
            now,
        )
        settled = 0
        for worker, jobs in by_worker.items():
            for job in jobs:
                self._settle(job, worker, [j for j in jobs if j["id"] != job["id"]], now)
                settled += 1
        return settled

    def _settle(self, job: Any, worker: str, others: list[Any], now: datetime) -> None:
        here = job["host_id"] == self.host_id or (
            job["host_id"] is None and worker.rsplit(":", 2)[0] == socket.gethostname()
        )  # a worker row without a host id (or gone): by the host name in the worker's id
        if here:
            kill_marked(f"{job['id']}.{job['attempts']}", grace=self.settings.kill_grace)
        if worker == self.worker_id:
            why = f"this worker ({worker}) lost track of it"
        else:
            why = f"worker {worker} vanished while running it"
        if others:
            why += " (also running: " + ", ".join(_name(j) for j in others[:5])
            why += f" and {len(others) - 5} more)" if len(others) > 5 else ")"
        with contextlib.suppress(OpsError):
            feed.append_logs(
                self.db,
                job["id"],
                job["attempts"],
                [(now, "meta", f"attempt {job['attempts']} interrupted: {why}")],
                cap=self.settings.log_cap,
            )
        outcome, message, kind = "interrupted", why, VANISHED
        if job["cancel_requested"]:  # asked of the vanished worker: never requeue it
            outcome, kind = "cancelled", "cancelled"
            message = f"{job['cancel_reason'] or 'cancelled'} ({why})"
        row = {
            "id": job["id"],
            "attempts": job["attempts"],
            "on_interrupt": job["on_interrupt"],
            "interruptions": job["interruptions"],
            "max_retries": 0,
            "backoff_s": 0,
        }
        detail = {"worker": worker, "also_running": [j["id"] for j in others]}
        error = {"message": message, "kind": kind, "detail": detail}
        self.recorder.record(row, RunResult(outcome=outcome, error=error), patient=False)

    def prune(self, now: datetime) -> int:
        """Forget workers that stopped or died long ago: the table must not grow forever."""
        return claim_store.prune_workers(self.db, now - WORKER_ROWS_KEPT)


def _name(job: Any) -> str:
    return f"{job['id']} ({job['template']})"


def _vanished(worker: str, jobs: list[Any]) -> str:
    if not jobs:
        return "vanished (no heartbeat, or its process is gone) while running no job"
    return "vanished while running " + ", ".join(_name(j) for j in jobs[:10])
