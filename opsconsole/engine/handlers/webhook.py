"""Built-in handler of ``webhook-delivery`` jobs: one signed POST per attempt.

The secret is resolved from its reference in this worker's opsconsole.toml as the message
is signed, so it never sits in the job, its log or its result. A failed attempt ends the
job ``failed`` and the job's own retry policy backs off; the outcome of each attempt is
recorded on the webhook (its failures, and disabling it) by ``core/store/webhooks``.
"""

from __future__ import annotations

from typing import Any

from opsconsole.core.errors import InvalidParams
from opsconsole.core.store import webhooks as webhook_store
from opsconsole.core.webhook_config import resolve_secret
from opsconsole.core.webhook_send import send
from opsconsole.core.webhooks import ATTEMPTS, DISABLE_AFTER, message_id
from opsconsole.engine.context import RunContext, RunResult


def deliver(ctx: RunContext) -> Any:
    """Params: webhook, event (id), type, body (the JSON text signed and sent as is)."""
    if ctx.settings is None or ctx.db is None or ctx.clock is None:
        return RunResult.failed("webhook delivery must run in the worker (isolate: false)")
    name = str(ctx.params["webhook"])
    event_id = int(ctx.params["event"])
    hook = next((h for h in ctx.settings.webhooks if h.name == name), None)
    if hook is None:
        return RunResult.failed(
            f"webhook '{name}' is not declared in this worker's opsconsole.toml", kind="setup"
        )
    msg_id = message_id(name, event_id)
    if ctx.dry_run:
        ctx.log(f"dry run: would POST {ctx.params['type']} {msg_id} to {hook.shown_url()}")
        return {"webhook": name, "dry_run": True}
    final = ctx.attempt >= ATTEMPTS
    try:
        secret = resolve_secret(hook.secret, f"webhook '{name}'")
    except InvalidParams as exc:
        webhook_store.record_attempt(
            ctx.db, name, ok=False, status=str(exc), final=final,
            disable_after=DISABLE_AFTER, now=ctx.clock.now(),
        )  # fmt: skip
        return RunResult.failed(str(exc), kind="setup")
    now = ctx.clock.now()
    sent = send(hook.url, secret, msg_id, str(ctx.params["body"]), now)
    status = sent.status if sent.ok else f"{sent.status} (attempt {ctx.attempt} of {ATTEMPTS})"
    ctx.log(f"POST {ctx.params['type']} {msg_id} to {hook.shown_url()}: {status}")
    disabled = webhook_store.record_attempt(
        ctx.db, name, ok=sent.ok, status=status, final=final,
        disable_after=DISABLE_AFTER, now=ctx.clock.now(),
    )  # fmt: skip
    if disabled:
        ctx.log(f"webhook {name} disabled after {DISABLE_AFTER} failed deliveries in a row")
    result = {"webhook": name, "event": event_id, "id": msg_id, "status": sent.status}
    if not sent.ok:
        return RunResult.failed(f"webhook {name}: {sent.status}", kind="http", detail=result)
    return result
