"""Composition root: settings -> store -> OpsService, and the worker pool on top.

Faces build everything through here, so both get the same wiring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsconsole.config import Settings

if TYPE_CHECKING:
    from opsconsole.core.clock import Clock
    from opsconsole.core.service import OpsService
    from opsconsole.engine.pool import WorkerPool


def open_service(settings: Settings, *, clock: Clock | None = None) -> OpsService:
    """Open (and upgrade if needed) the store; refuse one newer than this code knows."""
    from opsconsole.core.service import OpsService
    from opsconsole.core.store.db import Database

    db = Database(settings.db)
    db.ensure_schema()
    return OpsService(settings, db, clock=clock)


def start_pool(service: OpsService, *, slots: int | None = None, once: bool = False) -> WorkerPool:
    from opsconsole.engine.pool import WorkerPool

    return WorkerPool(service, slots=slots or service.settings.workers, once=once).start()
