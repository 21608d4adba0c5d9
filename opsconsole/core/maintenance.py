"""Retention, pruning, backups and store checks. OpsService's mixin.

The one place that turns the ``retention_*`` settings into what may be deleted, and that
refuses a prune that would cut across a running job. The deletes themselves are
``core/store/retention.py``'s; the pool's periodic run is ``engine/maintenance.py``'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opsconsole.config import Settings
from opsconsole.core.approvals import SYSTEM_ACTOR
from opsconsole.core.catalog import format_duration, parse_duration
from opsconsole.core.errors import InvalidParams
from opsconsole.core.host import ServiceHost
from opsconsole.core.store import backup as backup_store
from opsconsole.core.store import retention
from opsconsole.core.views import HealthCheck, HealthView

log = logging.getLogger("opsconsole.maintenance")


@dataclass(frozen=True)
class Retention:
    """The retention settings, parsed: seconds, or None for "keep"."""

    jobs: float | None
    logs: float | None

    @classmethod
    def of(cls, settings: Settings) -> Retention:
        """Parse and check ``retention_jobs`` / ``retention_logs``; InvalidParams names the
        setting in one line."""
        jobs = _setting("retention_jobs", settings.retention_jobs)
        logs = _setting("retention_logs", settings.retention_logs)
        if jobs is not None and logs is not None and logs > jobs:
            raise InvalidParams(
                f"retention_logs ({settings.retention_logs}) must not be longer than "
                f"retention_jobs ({settings.retention_jobs}): log lines go with their job"
            )
        return cls(jobs, logs)


def _setting(name: str, value: str) -> float | None:
    try:
        seconds = parse_duration(value)
    except InvalidParams:
        raise InvalidParams(
            f"{name}: invalid duration '{str(value)[:40]}' (use 30d, 12h; 0 keeps for ever)"
        ) from None
    return None if seconds == 0 else seconds


@dataclass(frozen=True)
class PruneView:
    """What a prune removed (or, with ``dry_run``, would remove), per kind."""

    counts: dict[str, int]
    dry_run: bool
    complete: bool
    """False when a time budget ended the prune before everything due was removed."""
    jobs_before: datetime | None
    logs_before: datetime | None
    plan_files: int = 0
    kept: list[str] = field(default_factory=list)
    """What a prune never removes, for the operator reading its report."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """One line: ``3 jobs, 1200 log lines, ...`` (what a worker's log says)."""
        parts = [f"{n} {kind.replace('_', ' ')}" for kind, n in self.counts.items() if n]
        return ", ".join(parts) or "nothing"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("jobs_before", "logs_before"):
            value = out[key]
            out[key] = value.isoformat() if value is not None else None
        out["total"] = self.total
        return out


KEPT = [
    "audit events (job_events) of pruned jobs",
    "live jobs, and finished jobs a live job depends on",
    "the last job of each instance, schedule and check",
    "jobs with a break-glass review nobody acknowledged",
    f"the newest {retention.RESULTS_KEPT} results of each check",
]


@dataclass(frozen=True)
class BackupView:
    path: str
    pages: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MaintenanceMixin(ServiceHost):
    """prune / backup / vacuum / check of the store."""

    def retention(self) -> Retention:
        """The retention settings, checked (a worker refuses to start on bad ones)."""
        return Retention.of(self.settings)

    def prune(self, *, dry_run: bool = False, older_than: str | None = None) -> PruneView:
        """Remove what retention allows now, in small transactions; or only count it.

        Args:
            older_than: a duration that replaces ``retention_jobs`` for this prune (refused
                when shorter than a running job's age).
        """
        self.authorize("prune")
        now = self.now()
        cut = self._cutoffs(now, older_than)
        if dry_run:
            counted = retention.count(self.db, cut)
            return self._view(counted, cut, dry_run=True, complete=True)
        return self._prune(cut, budget=None, actor=self.identity.name)

    def apply_retention(self, now: datetime, *, budget: float) -> PruneView:
        """The system's own prune (a worker's maintenance): what the settings allow, for at
        most ``budget`` seconds; no role needed, the ``pruned`` event names opsconsole."""
        try:
            view = self._prune(self._cutoffs(now, None), budget=budget, actor=SYSTEM_ACTOR)
        except InvalidParams as exc:  # a job running longer than the retention: said in health
            retention.set_last_run(self.db, {"at": now.isoformat(), "refused": str(exc)})
            raise
        retention.set_last_run(
            self.db, {"at": now.isoformat(), "pruned": view.summary(), "complete": view.complete}
        )
        return view

    def retention_check(self) -> HealthCheck:
        """``health``'s retention line: the settings, and what the last periodic prune did."""
        try:
            keep = self.retention()
        except InvalidParams as exc:
            return HealthCheck("retention", False, f"{exc}: nothing is pruned")
        jobs = "kept" if keep.jobs is None else format_duration(keep.jobs)
        logs = "with their job" if keep.logs is None else format_duration(keep.logs)
        detail = f"jobs {jobs}, log lines {logs}"
        last = retention.last_run(self.db)
        if last is None:
            return HealthCheck("retention", True, f"{detail}; no periodic prune yet")
        at = datetime.fromisoformat(last["at"]).strftime("%Y-%m-%d %H:%M UTC")
        if last.get("refused"):
            return HealthCheck(
                "retention", False, f"{detail}; prune refused {at}: {last['refused']}"
            )
        more = "" if last["complete"] else " (more left)"
        return HealthCheck("retention", True, f"{detail}; last prune {at}: {last['pruned']}{more}")

    def _prune(self, cut: retention.Cutoffs, *, budget: float | None, actor: str) -> PruneView:
        deadline = None if budget is None else time.monotonic() + budget
        total = retention.Pruned()
        steps: list[Callable[[], retention.Pruned]] = [
            lambda: retention.prune_jobs(self.db, cut, delivery=False),
            lambda: retention.prune_jobs(self.db, cut, delivery=True),
            lambda: retention.prune_logs(self.db, cut),
            lambda: retention.prune_fires(self.db, cut),
            lambda: retention.prune_results(self.db, cut),
            lambda: retention.prune_worker_rows(self.db, cut),
        ]
        complete = True
        for run in steps:
            while complete:
                if deadline is not None and time.monotonic() >= deadline:
                    complete = False
                    break
                got = run()
                total.add(got)
                if got.total == 0:
                    break
        removed = _remove_plan_files(total.files, Path(self.settings.home))
        view = self._view(total, cut, dry_run=False, complete=complete, files=removed)
        if view.total:
            retention.record(
                self.db, total, actor=actor, now=cut.now, message=f"pruned {view.summary()}"
            )
        return view

    def _cutoffs(self, now: datetime, older_than: str | None) -> retention.Cutoffs:
        keep = self.retention()
        jobs_s, logs_s = keep.jobs, keep.logs
        if older_than is not None:
            try:
                jobs_s = parse_duration(older_than)
            except InvalidParams:
                raise InvalidParams(
                    f"--older-than: invalid duration '{older_than[:40]}' (use 30d, 12h)"
                ) from None
            if jobs_s <= 0:
                raise InvalidParams("--older-than must be longer than 0")
            logs_s = jobs_s if logs_s is None else min(logs_s, jobs_s)
        running = retention.oldest_running(self.db)
        if jobs_s is not None and running is not None:
            job_id, started = running
            age = (now - started).total_seconds()
            if age > jobs_s:
                what = "--older-than" if older_than is not None else "retention_jobs"
                raise InvalidParams(
                    f"{what} ({format_duration(jobs_s)}) is shorter than the age of running "
                    f"job {job_id} ({format_duration(int(age))}): a retention must outlast every "
                    "running job"
                )
        deliveries = retention.DELIVERIES_KEPT.total_seconds()
        if jobs_s is not None:
            deliveries = min(deliveries, jobs_s)
        return retention.Cutoffs(
            jobs=None if jobs_s is None else now - timedelta(seconds=jobs_s),
            logs=None if logs_s is None else now - timedelta(seconds=logs_s),
            deliveries=now - timedelta(seconds=deliveries),
            now=now,
        )

    @staticmethod
    def _view(
        pruned: retention.Pruned,
        cut: retention.Cutoffs,
        *,
        dry_run: bool,
        complete: bool,
        files: int = 0,
    ) -> PruneView:
        return PruneView(
            counts=dict(pruned.counts),
            dry_run=dry_run,
            complete=complete,
            jobs_before=cut.jobs,
            logs_before=cut.logs,
            plan_files=files,
            kept=list(KEPT),
        )

    def backup(
        self, dest: Path, *, force: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> BackupView:
        """Copy the store to ``dest`` while workers run (SQLite only; PostgreSQL: the
        ``pg_dump`` command to run instead, as the refusal)."""
        self.authorize("backup")
        copied = backup_store.backup(self.db, dest, force=force, progress=progress)
        return BackupView(str(copied.path), copied.pages, copied.bytes)

    def vacuum(self) -> tuple[int | None, int | None]:
        """Rebuild the store compactly; the SQLite file's size before and after."""
        self.authorize("vacuum")
        return backup_store.vacuum(self.db)

    def check_store(self) -> HealthView:
        """Integrity, foreign keys and schema revision of the store (``db check``)."""
        return HealthView(
            [HealthCheck(f.name, f.ok, f.detail) for f in backup_store.check(self.db)]
        )


def _remove_plan_files(files: list[str], home: Path) -> int:
    """Delete the saved plan files of pruned jobs on this host (an instance's last job keeps
    its plan). Only ``.tfplan`` files inside this home's instance workspaces: a path read
    from the store is never trusted further than that."""
    root = (home / "instances").resolve()
    removed = 0
    for name in files:
        path = Path(name)
        if path.suffix != ".tfplan" or not path.resolve().is_relative_to(root):
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue  # gone already: nothing left to remove
        except OSError as exc:
            # a saved plan holds the run's variables: one that stays is said, never left quietly
            log.warning("prune: cannot remove plan file %s: %s", path, exc.strerror or exc)
            continue
        removed += 1
    return removed
