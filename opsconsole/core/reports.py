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
from opsconsole.core import hostid
from opsconsole.core.access import check_team_name
from opsconsole.core.catalog import parse_duration
from opsconsole.core.clock import SystemClock
from opsconsole.core.errors import Conflict, NotFound, OpsError
from opsconsole.core.host import ServiceHost
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import queries
from opsconsole.core.store import schedules as schedule_store
from opsconsole.core.storeclock import SKEW_NOTED
from opsconsole.core.templates import CatalogReports
from opsconsole.core.views import (
    HealthCheck,
    HealthView,
    LockHolder,
    LockView,
    StatsView,
    TemplateStatsView,
    WorkerView,
)

if TYPE_CHECKING:
    from opsconsole.config import Settings
    from opsconsole.core.catalog import Catalog
    from opsconsole.core.store.db import Database

S = JobState


class ReportsMixin(ServiceHost, CatalogReports):
    # -- workers, locks, stats, health ------------------------------------------------

    def _worker_view(self, r: Mapping[str, Any], now: datetime) -> WorkerView:
        alive = (
            r["state"] in ("running", "draining")
            and (now - r["heartbeat_at"]).total_seconds() <= self.settings.lease
        )
        here = (
            r["host_id"] == hostid.host_id()
            if r["host_id"] is not None
            else r["host"] == socket.gethostname()  # a row without a host id: by its name
        )
        if alive and here and not hostid.pid_exists(r["pid"]):
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
            host_id=r["host_id"],
        )

    def store_time(self) -> datetime:
        """Now by the store's clock where it has its own (PostgreSQL) and this service runs on
        the system clock: heartbeats are written in the store's time, and a host whose clock
        is off must not see live workers as stale. Else this service's clock (a settable one
        stays exact)."""
        if isinstance(self.clock, SystemClock):
            found = claim_store.store_now(self.db)
            if found is not None:
                return found
        return self.now()

    def clock_check(self) -> HealthCheck | None:
        """A failing ``clock`` check when this host's clock is far from the store's; None when
        it is not (or the store has no clock of its own)."""
        if not isinstance(self.clock, SystemClock):
            return None
        found = claim_store.store_now(self.db)
        if found is None:
            return None
        off = (self.clock.now() - found).total_seconds()
        if abs(off) < SKEW_NOTED:
            return None
        way = "ahead of" if off > 0 else "behind"
        return HealthCheck(
            "clock",
            False,
            f"this host's clock is {abs(off):.1f}s {way} the store's (workers correct for it; "
            "times this host shows and submits are off: fix its time sync)",
        )

    def workers(self, *, include_stopped: bool = False) -> list[WorkerView]:
        now = self.store_time()
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
        self.wake_workers()
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

    def stats(self, since: str | None = None, *, team: str | None = None) -> StatsView:
        """Counts and per-template figures; with ``team``, of that team's jobs only."""
        if team is not None:
            check_team_name(team)
        start = None if not since else self.now() - timedelta(seconds=parse_duration(since))
        counts = queries.counts_by_state(self.db, start, team)
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
            for t in queries.template_stats(self.db, start, team=team)
        ]
        return StatsView(
            since=start, counts={s.value: counts.get(s.value, 0) for s in S}, templates=templates
        )

    def health(self) -> HealthView:
        """Every check of ``health``, in a fixed order; the README's table says what each
        one looks at and when it fails."""
        checks: list[HealthCheck] = []
        try:
            queries.ping(self.db)
        except OpsError as exc:
            checks.append(HealthCheck("store", False, str(exc)))
            checks.append(_files_check(self.db))
            checks.append(disk_check(self.settings))
            checks.append(catalog_check(self.current_catalog()))
            return HealthView(checks)
        try:
            self.db.check_writable()
            checks.append(HealthCheck("store", True, f"{self.db.describe()} (read and write)"))
        except OpsError as exc:
            detail = f"{exc}: jobs can be read but not submitted or recorded"
            checks.append(HealthCheck("store", False, detail + _read_only_hint(self.settings)))
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
        skew = self.clock_check()
        if skew is not None:
            checks.append(skew)
        try:
            checks.append(HealthCheck("key", True, self.key_status()))
        except OpsError as exc:
            checks.append(HealthCheck("key", False, str(exc)))
        checks.append(self.retention_check())
        checks.append(_files_check(self.db))
        checks.append(disk_check(self.settings))
        checks.append(catalog_check(self.current_catalog()))
        checks.extend(self.webhook_health())
        overdue = schedules_check(self.db, self.now())
        if overdue is not None:
            checks.append(overdue)
        return HealthView(checks)


SCHEDULE_OVERDUE = timedelta(minutes=2)
"""How long a fire time may pass unfired before ``health`` says nobody fires schedules:
every worker pool ticks each second, so two minutes is a dead scheduler, not a slow one."""


def schedules_check(db: Database, now: datetime) -> HealthCheck | None:
    """Fails when an active schedule's fire time passed unfired: no worker or console is
    running the scheduler (the ledger will call those fires missed). None: no such schedule."""
    late = schedule_store.due(db, now - SCHEDULE_OVERDUE, limit=5)
    if not late:
        return None
    names = ", ".join(
        f"{r['name']} (due {int((now - r['next_fire_at']).total_seconds() // 60)}m ago)"
        for r in late
    )
    return HealthCheck(
        "schedules",
        False,
        f"overdue: {names}: no worker or console is firing schedules (start `opsconsole worker`)",
    )


DISK_MIN_FREE = 256 * 1024 * 1024
"""Bytes that must stay free where the store lives: below this, ``health`` fails ``disk``."""
DISK_MIN_FREE_PERCENT = 2.0
"""Percent of that file system that must stay free, as well."""


def unopened_health(settings: Settings, reason: str) -> HealthView:
    """``health`` when the store cannot even be opened (``reason`` says why): the store check
    fails, and the checks that need no store still run."""
    from opsconsole.core.catalog import Catalog

    return HealthView(
        [
            HealthCheck("store", False, reason + _read_only_hint(settings)),
            disk_check(settings),
            catalog_check(Catalog.load(Path(settings.catalog))),
        ]
    )


def store_directory(settings: Settings) -> Path:
    """The directory whose disk the store writes to: the SQLite file's, else the state dir."""
    from opsconsole.core.store.db import sqlite_path

    path = sqlite_path(settings.db)
    return path.parent if path is not None else Path(settings.home)


def disk_check(settings: Settings) -> HealthCheck:
    """Free space where the store (and its WAL) grows; the nearest existing directory up."""
    probe = store_directory(settings)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as exc:
        return HealthCheck("disk", False, f"cannot read free space at {probe}: {exc.strerror}")
    free_pct = usage.free / usage.total * 100 if usage.total else 100.0
    ok = usage.free > DISK_MIN_FREE and free_pct > DISK_MIN_FREE_PERCENT
    detail = f"{usage.free // (1024 * 1024)} MiB free ({free_pct:.0f}%) at {probe}"
    if not ok:
        detail += (
            f": below {DISK_MIN_FREE // (1024 * 1024)} MiB or {DISK_MIN_FREE_PERCENT:g}% free, "
            "the store may soon refuse writes"
        )
    return HealthCheck("disk", ok, detail)


def catalog_check(catalog: Catalog) -> HealthCheck:
    """Fails when the catalog cannot be read or any template file is broken: a broken
    template is a job an operator cannot submit, which monitoring should show."""
    where = str(catalog.root) if catalog.root is not None else "the catalog"
    if catalog.error is not None:
        return HealthCheck("catalog", False, str(catalog.error))
    if catalog.problems:
        first = catalog.problems[0]
        more = len(catalog.problems) - 1
        detail = f"{len(catalog.problems)} problem(s) in {where}: {first}"
        if more:
            detail += f" (and {more} more: opsconsole templates list)"
        return HealthCheck("catalog", False, detail)
    if not len(catalog):
        return HealthCheck("catalog", True, f"no templates yet in {catalog.directory}")
    return HealthCheck("catalog", True, f"{len(catalog)} template(s) in {where}")


def _files_check(db: Database) -> HealthCheck:
    exposed = db.file_problem()
    return HealthCheck("files", exposed is None, exposed or db.access_text())


def _read_only_hint(settings: Settings) -> str:
    """Says so when the store's file system is mounted read-only (no other error is clearer)."""
    try:
        flags = os.statvfs(store_directory(settings)).f_flag
    except OSError:
        return ""
    if flags & os.ST_RDONLY:
        return f" ({store_directory(settings)} is on a read-only file system)"
    return ""
