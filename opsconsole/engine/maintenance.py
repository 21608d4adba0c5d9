"""The store's upkeep in a running pool: retention in small batches, once across processes.

Every worker's pool calls ``maintain`` each minute; one of them per ``EVERY`` wins the turn
(a guarded UPDATE of the ``maintenance.next_at`` row in store_meta) and prunes for at most
``BUDGET`` seconds, a small transaction at a time, so jobs' own writes go on between them.
A prune the budget cut short continues at the next minute instead of the next period.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from opsconsole.core.store import retention

if TYPE_CHECKING:
    from opsconsole.core.maintenance import PruneView
    from opsconsole.core.service import OpsService

EVERY = timedelta(minutes=10)
"""How often the store is pruned (by one of the workers that share it)."""
BUDGET = 20.0
"""Seconds one turn may prune for before it leaves the rest to the next minute."""
SOON = timedelta(minutes=1)

log = logging.getLogger("opsconsole.maintenance")


def maintain(service: OpsService, now: datetime) -> PruneView | None:
    """Prune what retention allows, a batch at a time, if it is this process's turn.

    Returns what was pruned, or None when it was not due here. Bad retention settings raise
    (the pool's timer logs it every minute: the store is not being pruned).
    """
    service.retention()
    if not retention.take_turn(service.db, now, now + EVERY):
        return None
    view = service.apply_retention(now, budget=BUDGET)
    if not view.complete:
        retention.set_next_run(service.db, now + SOON)
    if view.total:
        more = "" if view.complete else " (more to prune: continuing in a minute)"
        log.info("maintenance: pruned %s%s", view.summary(), more)
    else:
        log.debug("maintenance: nothing to prune")
    return view
