"""The schedules' tick: fire what is due at ``now`` (time is a parameter; tests set it).

Each due schedule is fired by ``OpsService.fire_schedule`` in one write transaction that
moves its cursor with a guarded UPDATE, so two processes ticking at once (two workers, a
worker and a console) fire each time once. APScheduler computes the cron fire times here,
in the engine (``engine/fire_times.py``); the domain never imports it. A template's
``schedule:`` block is made a schedule when the catalog changes (checked each tick, cheap).
"""

from __future__ import annotations

import logging
import weakref
from datetime import datetime
from typing import TYPE_CHECKING

from opsconsole.core import template_schedules
from opsconsole.core.errors import OpsError
from opsconsole.engine.fire_times import fire_times

if TYPE_CHECKING:
    from opsconsole.core.catalog import Catalog
    from opsconsole.core.service import OpsService

log = logging.getLogger("opsconsole.scheduler")

_synced: weakref.WeakKeyDictionary[OpsService, Catalog] = weakref.WeakKeyDictionary()
"""The catalog each service last made template schedules from."""


def tick(service: OpsService, now: datetime) -> None:
    """Fire every schedule due at ``now``, once across processes; record what was not run.

    One schedule that cannot fire (its store write failed) is logged and the others still
    fire; a store that is down fails the whole tick, which the pool's timer logs.
    """
    sync_templates(service)
    for row in service.due_schedules(now):
        try:
            service.fire_schedule(row, now, times=fire_times)
        except OpsError as exc:
            log.warning("schedule %s: could not fire: %s", row["name"], exc)


def sync_templates(service: OpsService) -> None:
    """Make template schedules follow the catalog, once per catalog change."""
    try:
        catalog = service.current_catalog()
    except OpsError as exc:
        log.warning("schedules: the catalog cannot be read: %s", exc)
        return
    if _synced.get(service) is catalog:
        return
    done, problems = template_schedules.sync(service, catalog, times=fire_times)
    for line in done:
        log.info("%s", line)
    for line in problems:
        log.warning("%s", line)
    _synced[service] = catalog
