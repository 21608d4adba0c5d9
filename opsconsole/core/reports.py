"""The catalog, workers, locks, stats and health as read models: OpsService's reports.

A mixin of ``OpsService`` (kept apart so the service module stays one responsibility):
everything here reads; nothing changes a job.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole.config import check_slots
from opsconsole.core.catalog import Template, parse_duration
from opsconsole.core.errors import Conflict, NotFound, OpsError
from opsconsole.core.secrets import MASK
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import queries
from opsconsole.core.views import (
    HealthCheck,
    HealthView,
    LockHolder,
    LockView,
    ParamView,
    StatsView,
    TemplateStatsView,
    TemplateView,
    WorkerView,
)

if TYPE_CHECKING:
    from opsconsole.config import Settings
    from opsconsole.core.catalog import Catalog
    from opsconsole.core.store.db import Database

S = JobState


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ReportsMixin:
    settings: Settings
    db: Database

    if TYPE_CHECKING:

        @property
        def catalog(self) -> Catalog: ...

        def now(self) -> datetime: ...

        def _poke(self) -> None: ...

        def key_status(self) -> str: ...

    # -- catalog -----------------------------------------------------------------------

    def templates(self) -> list[TemplateView]:
        return [self._template_view(self.catalog.get(n)) for n in self.catalog.names()]

    def template(self, name: str) -> TemplateView:
        return self._template_view(self.catalog.get(name))

    def catalog_problems(self) -> list[str]:
        return [str(p) for p in self.catalog.problems]

    @staticmethod
    def _template_view(t: Template) -> TemplateView:
        return TemplateView(
            name=t.name,
            description=t.description,
            runner=t.runner,
            params=[
                ParamView(
                    name=p.name,
                    type=p.type.value,
                    required=p.required,
                    default=MASK if p.secret and p.default not in (None, "") else p.default,
                    secret=p.secret,
                    description=p.description,
                    choices=list(p.choices),
                    pattern=p.pattern,
                    min=p.min,
                    max=p.max,
                )
                for p in t.params.values()
            ],
            priority=t.priority,
            timeout_s=t.timeout_s,
            retries=t.retries,
            backoff_s=t.backoff_s,
            concurrency_key=t.concurrency_key,
            concurrency_limit=t.concurrency_limit,
            on_interrupt=t.on_interrupt,
            tags=list(t.tags),
            source=t.source,
            command=list(t.command) if t.command is not None else None,
            handler=t.handler,
        )

    # -- workers, locks, stats, health ------------------------------------------------

    def _worker_view(self, r: Mapping[str, Any], now: datetime) -> WorkerView:
        alive = (
            r["state"] in ("running", "draining")
            and (now - r["heartbeat_at"]).total_seconds() <= self.settings.lease
        )
        if alive and r["host"] == socket.gethostname() and not _pid_exists(r["pid"]):
            alive = False  # it crashed on this host: no need to wait for its lease to run out
        return WorkerView(
            id=r["id"],
            host=r["host"],
            pid=r["pid"],
            slots=r["slots"],
            desired_slots=r["desired_slots"],
            busy=r["busy"],
            state=r["state"],
            started_at=r["started_at"],
            heartbeat_at=r["heartbeat_at"],
            alive=alive,
            version=r["version"],
            problem=r["problem"],
            supervision=r["supervision"],
        )

    def workers(self, *, include_stopped: bool = False) -> list[WorkerView]:
        now = self.now()
        return [
            self._worker_view(r, now)
            for r in claim_store.list_workers(self.db, include_stopped=include_stopped)
        ]

    def resize_worker(self, ref: str, slots: int) -> WorkerView:
        check_slots(slots, "slots")
        matches = [w for w in self.workers() if w.id == ref] or [
            w for w in self.workers() if w.id.startswith(ref)
        ]
        if not matches:
            raise NotFound(f"no running worker matches '{ref[:40]}'")
        if len(matches) > 1:
            raise Conflict(f"'{ref}' matches several workers: type more")
        row = claim_store.resize_worker(self.db, matches[0].id, slots)
        if row is None:
            raise NotFound(f"worker '{matches[0].id}' is no longer running")
        self._poke()
        return self._worker_view(row, self.now())

    def locks(self) -> list[LockView]:
        out: dict[str, dict[str, Any]] = {}
        for r in queries.lock_rows(self.db):
            entry = out.setdefault(
                r["concurrency_key"],
                {"limit": r["concurrency_limit"], "holders": [], "waiting": []},
            )
            if r["state"] == S.RUNNING.value:
                entry["holders"].append(
                    LockHolder(r["id"], r["template"], r["worker"], r["started_at"])
                )
            else:
                entry["waiting"].append(r["id"])
        return [
            LockView(
                key=k,
                limit=v["limit"],
                holders=v["holders"],
                waiting=v["waiting"],
                since=min((h.since for h in v["holders"] if h.since), default=None),
            )
            for k, v in out.items()
        ]

    def stats(self, since: str | None = None) -> StatsView:
        start = None if not since else self.now() - timedelta(seconds=parse_duration(since))
        counts = queries.counts_by_state(self.db, start)
        templates = [
            TemplateStatsView(
                template=t.template,
                runs=t.runs,
                succeeded=t.succeeded,
                partial=t.partial,
                failed=t.failed,
                success_rate=round(t.succeeded / t.runs, 4) if t.runs else None,
                p50_s=t.p50_s,
                p95_s=t.p95_s,
                recent=t.recent,
            )
            for t in queries.template_stats(self.db, start)
        ]
        return StatsView(
            since=start, counts={s.value: counts.get(s.value, 0) for s in S}, templates=templates
        )

    def health(self) -> HealthView:
        checks: list[HealthCheck] = []
        try:
            queries.ping(self.db)
            checks.append(HealthCheck("store", True, self.db.describe()))
        except OpsError as exc:
            checks.append(HealthCheck("store", False, str(exc)))
            return HealthView(checks)
        workers = self.workers()
        alive = [w for w in workers if w.alive]
        stale = [w for w in workers if not w.alive]
        troubled = [w for w in alive if w.problem]
        counts = queries.counts_by_state(self.db)
        ready = counts.get(S.QUEUED.value, 0)
        if stale:
            checks.append(
                HealthCheck(
                    "workers",
                    False,
                    f"{len(stale)} worker(s) stopped heartbeating: "
                    + ", ".join(w.id for w in stale[:3]),
                )
            )
        elif not alive and ready:
            checks.append(
                HealthCheck("workers", False, f"no live worker and {ready} job(s) queued")
            )
        else:
            busy = sum(w.busy for w in alive)
            slots = sum(w.slots for w in alive)
            how = sorted({w.supervision for w in alive if w.supervision})
            detail = f"{len(alive)} alive, {busy}/{slots} slots busy"
            if how:
                detail += f"; job processes contained by {', '.join(how)}"
            checks.append(HealthCheck("workers", True, detail))
        for w in troubled:
            checks.append(HealthCheck(f"worker {w.id}", False, w.problem or ""))
        try:
            checks.append(HealthCheck("key", True, self.key_status()))
        except OpsError as exc:
            checks.append(HealthCheck("key", False, str(exc)))
        exposed = self.db.file_problem()
        checks.append(HealthCheck("files", exposed is None, exposed or self.db.access_text()))
        home = Path(self.settings.home)
        probe = home if home.exists() else home.parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        usage = shutil.disk_usage(probe)
        free_pct = usage.free / usage.total * 100 if usage.total else 100.0
        ok = usage.free > 256 * 1024 * 1024 and free_pct > 2.0
        checks.append(
            HealthCheck(
                "disk", ok, f"{usage.free // (1024 * 1024)} MiB free ({free_pct:.0f}%) at {probe}"
            )
        )
        return HealthView(checks)
