"""Composition root: settings -> store -> OpsService, and the worker pool on top.

Faces build everything through here, so both get the same wiring. What a command does not
use it does not import: the catalog opens without the store, and completion glances at a
SQLite store without SQLAlchemy.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole.config import Settings, default_home

if TYPE_CHECKING:
    from opsconsole.core.clock import Clock
    from opsconsole.core.service import OpsService
    from opsconsole.core.store.db import Notice
    from opsconsole.core.store.peek import InstanceRef, JobRef, ScheduleRef
    from opsconsole.core.templates import CatalogReader
    from opsconsole.core.views import HealthCheck, HealthView
    from opsconsole.engine.pool import WorkerPool

HEALTH_LOCK_WAIT = 10.0
"""Seconds ``health`` waits for another process's write lock before its store check fails:
a monitoring probe must answer, and a store no one can write to for this long is not well."""


def open_service(
    settings: Settings,
    *,
    clock: Clock | None = None,
    notice: Notice | None = None,
    busy_timeout: float | None = None,
) -> OpsService:
    """Open (and upgrade if needed) the store; refuse one newer than this code knows.

    A new store is made only where the operator asked: in the state directory (the default
    one is made with its parents, a given one if its parent exists), or at a path whose
    directory exists. ``notice`` hears what the store has to say (a new store, a lock
    waited on); by default it is logged.
    """
    from opsconsole.core.files import access_for, make_dir
    from opsconsole.core.service import OpsService
    from opsconsole.core.store.db import Database, sqlite_path

    access = access_for(settings.share_group)
    home = Path(settings.home)
    path = sqlite_path(settings.db)
    in_home = path is not None and path.parent == home
    if in_home and not home.exists() and (home == default_home() or home.parent.is_dir()):
        make_dir(home, access, parents=True)
    if busy_timeout is None:
        db = Database(settings.db, notice=notice, access=access)
    else:
        db = Database(settings.db, notice=notice, access=access, busy_timeout=busy_timeout)
    try:
        db.ensure_schema()
    except BaseException:
        db.dispose()
        raise
    return OpsService(settings, db, clock=clock, fire_times=_fire_times)


def upgrade_store(
    settings: Settings, *, force: bool = False, notice: Notice | None = None
) -> tuple[str, str | None, str]:
    """Run the store's migrations now (``db upgrade``): (store, revision before, after).

    Unlike opening the service, this refuses an older store while running jobs hold leases
    on it (their workers may run the older code) unless ``force``; it never opens the
    service, which would upgrade on its own.
    """
    from opsconsole.core.errors import StoreUnavailable
    from opsconsole.core.store.db import KNOWN_REVISIONS, SCHEMA_REVISION, Database

    db = Database(settings.db, notice=notice)
    try:
        rev = db.current_revision()
        if rev is not None and rev not in KNOWN_REVISIONS:
            raise StoreUnavailable(
                f"store {db.describe()}: its schema (revision {rev}) is newer than this "
                f"opsconsole knows ({SCHEMA_REVISION}): upgrade opsconsole"
            )
        before, after = db.upgrade(force=force)
        return db.describe(), before, after
    finally:
        db.dispose()


def _fire_times(*args: Any, **kwargs: Any) -> list[datetime]:
    """APScheduler's fire times, imported only when a command asks when a schedule fires."""
    from opsconsole.engine.fire_times import fire_times

    return fire_times(*args, **kwargs)


def open_catalog(settings: Settings) -> CatalogReader:
    """The template catalog alone: no store, no SQLAlchemy (``templates``, completion)."""
    from opsconsole.core.templates import CatalogReader

    return CatalogReader(settings)


def job_refs(
    settings: Settings, prefix: str = "", *, live: int = 50, finished: int = 30
) -> list[JobRef]:
    """Job ids for completion: live jobs first, then recently finished ones.

    A SQLite store is read with the standard library, read-only, with no schema check: a
    Tab press must never migrate, create or wait on a store. Other stores go through the
    service (their driver is SQLAlchemy's anyway), still without a schema upgrade.
    """
    from opsconsole.core.store.peek import JobRef, job_refs, sqlite_file

    path = sqlite_file(settings.db)
    if path is not None:
        return job_refs(path, prefix, live=live, finished=finished)
    from opsconsole.core.service import OpsService
    from opsconsole.core.store.db import Database

    db = Database(settings.db)
    try:
        svc = OpsService(settings, db)
        found = [v for v in (*svc.running(), *svc.queue()) if v.id.startswith(prefix)][:live]
        if finished > 0:
            done = svc.history(text=prefix, limit=finished)
            found += [v for v in done if v.id.startswith(prefix)]
        return [JobRef(v.id, v.template, v.state.value) for v in found]
    finally:
        db.dispose()


def schedule_refs(settings: Settings, prefix: str = "") -> list[ScheduleRef]:
    """Schedule names for completion, read like ``job_refs`` (read-only, no schema check on
    SQLite)."""
    from opsconsole.core.store.peek import ScheduleRef, schedule_refs, sqlite_file

    path = sqlite_file(settings.db)
    if path is not None:
        return schedule_refs(path, prefix)
    from opsconsole.core.service import OpsService
    from opsconsole.core.store.db import Database

    db = Database(settings.db)
    try:
        views = OpsService(settings, db).schedules()
    finally:
        db.dispose()
    return [ScheduleRef(v.name, v.template, v.when) for v in views if v.name.startswith(prefix)]


def instance_refs(settings: Settings, prefix: str = "") -> list[InstanceRef]:
    """Terraform instance names for completion, read like ``job_refs`` (read-only, no
    schema check on SQLite)."""
    from opsconsole.core.store.peek import instance_completions, instance_refs, sqlite_file

    path = sqlite_file(settings.db)
    if path is not None:
        return instance_refs(path, prefix)
    from opsconsole.core.service import OpsService
    from opsconsole.core.store.db import Database

    db = Database(settings.db)
    try:
        views = OpsService(settings, db).instances()
    finally:
        db.dispose()
    rows = sorted(((v.template, v.name, v.status) for v in views), key=lambda r: (r[1], r[0]))
    return instance_completions(rows, prefix)


def start_pool(service: OpsService, *, slots: int | None = None, once: bool = False) -> WorkerPool:
    """Start a worker pool; refused when this host's secret key is not the store's.

    Checked before any claim: a wrong key would otherwise fail every job with a secret.
    """
    from opsconsole.engine.pool import WorkerPool

    service.key_status()
    service.retention()  # bad retention settings: refused now, not every minute in the log
    service.check_webhook_secrets()  # this pool signs deliveries: refused now, not per delivery
    log = logging.getLogger("opsconsole.worker")
    for problem in service.catalog_problems():
        log.warning("catalog: %s", problem)
    return WorkerPool(service, slots=slots or service.settings.workers, once=once).start()


def check_health(settings: Settings, *, notice: Notice | None = None) -> HealthView:
    """Every ``health`` check, even when the store cannot be opened (corrupt, unreachable,
    newer schema): the store check then fails with the reason, and the checks that need no
    store (catalog, disk) still run, so a monitor always gets a full answer."""
    from opsconsole.core.errors import OpsError
    from opsconsole.core.reports import unopened_health
    from opsconsole.core.views import HealthView

    try:
        service = open_service(settings, notice=notice, busy_timeout=HEALTH_LOCK_WAIT)
    except OpsError as exc:
        return unopened_health(settings, str(exc))
    try:
        view = service.health()
    finally:
        service.db.dispose()
    return HealthView([*view.checks, terraform_check(settings)])


def terraform_check(settings: Settings) -> HealthCheck:
    """Which Terraform engine and version jobs run with (``engine/runners/terraform_engine``)."""
    from opsconsole.core.views import HealthCheck
    from opsconsole.engine.runners.terraform_engine import describe

    ok, detail = describe(settings.terraform)
    return HealthCheck("terraform", ok, detail)


def check_names(settings: Settings, prefix: str = "") -> list[tuple[str, str]]:
    """Check names and statuses for completion, read like ``job_refs`` (read-only, no
    schema check on SQLite)."""
    from opsconsole.core.store.peek import check_names, sqlite_file

    path = sqlite_file(settings.db)
    if path is not None:
        return check_names(path, prefix)
    from opsconsole.core.service import OpsService
    from opsconsole.core.store.db import Database

    db = Database(settings.db)
    try:
        views = OpsService(settings, db).checks(recent=0)
    finally:
        db.dispose()
    return [(v.name, v.status) for v in views if v.name.startswith(prefix)]
