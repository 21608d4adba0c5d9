"""The webhooks' dispatcher: new events -> delivery jobs, from a cursor that skips nothing.

Runs in every pool (workers and consoles) at once: each batch is one transaction that
inserts the deliveries and moves the cursor with a guarded UPDATE, so a batch is queued
by exactly one process. A disabled webhook's cursor stands still until it is enabled.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from opsconsole.core.store import webhooks as webhook_store
from opsconsole.core.webhooks import BATCH, plan_deliveries

if TYPE_CHECKING:
    from opsconsole.core.service import OpsService

MAX_BATCHES = 20
"""Batches per webhook per call: a backlog drains over several calls, never in one lock."""


def dispatch(service: OpsService, now: datetime) -> None:
    """Match the events after each webhook's cursor and queue their deliveries."""
    hooks = service.settings.webhooks
    if not hooks:
        return
    webhook_store.ensure(service.db, [h.name for h in hooks], now)
    newest = webhook_store.newest_event(service.db)
    states = webhook_store.states(service.db)
    queued = 0
    for hook in hooks:
        state = states.get(hook.name)
        if state is None or state["disabled_at"] is not None or state["cursor"] >= newest:
            continue  # nothing new: no write transaction
        for _ in range(MAX_BATCHES):
            before = state["cursor"]
            queued += webhook_store.queue(
                service.db,
                hook.name,
                lambda cursor, feed, hook=hook: plan_deliveries(hook, cursor, feed, now),
                batch=BATCH,
                actor=service.identity.name,
                now=now,
            )
            state = webhook_store.states(service.db).get(hook.name)
            if state is None or state["cursor"] in (before, newest) or state["disabled_at"]:
                break
    if queued:
        service.wake_workers()
