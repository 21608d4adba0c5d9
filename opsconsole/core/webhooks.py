"""Webhooks: events delivered to HTTP endpoints, signed, retried, self-disabling.
OpsService's mixin, and what a delivery is made of (its type, body, id and job).

A delivery is a job of the built-in ``webhook-delivery`` template (a snapshot defined here,
never a catalog file), so it is retried with the job's own backoff and shows up like any
job. Bodies carry an event and its job's summary, never parameters: secrets cannot leak.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from opsconsole.core.catalog import parse_duration, parse_priority
from opsconsole.core.errors import InvalidParams, NotFound
from opsconsole.core.host import ServiceHost
from opsconsole.core.states import LIVE, JobState
from opsconsole.core.store import webhooks as webhook_store
from opsconsole.core.views import HealthCheck, iso
from opsconsole.core.webhook_config import Webhook, resolve_secret, unresolved
from opsconsole.core.webhook_send import send

DELIVERY_TEMPLATE = "webhook-delivery"
"""The template name of every delivery job (retention prunes old ones by it)."""
ATTEMPTS = 5
"""Attempts per delivery: the first and four retries with exponential backoff."""
DISABLE_AFTER = 5
"""Deliveries failed in a row (each after all its attempts) that disable a webhook."""
BACKOFF = "10s"
"""The first retry's delay; each next one doubles (10s, 20s, 40s, 80s, +/-20%)."""
GAP_WAIT = timedelta(seconds=60)
"""How long a cursor waits at a hole in the event ids before passing it: an id handed out
to a transaction that has not committed yet (PostgreSQL) fills in; one rolled back never
does. SQLite hands out ids in commit order, so there a hole is a deleted event."""
BATCH = 500

DELIVERY_SPEC: dict[str, Any] = {
    "name": DELIVERY_TEMPLATE,
    "description": "Deliver one event to a webhook (built in: Standard Webhooks, signed)",
    "runner": "python",
    "handler": "opsconsole.engine.handlers.webhook:deliver",
    # trusted built-in code bounded by its HTTP timeouts; it records its outcome in the store
    "isolate": False,
    "params": {
        "webhook": {"type": "string", "required": True},
        "event": {"type": "integer", "required": True},
        "type": {"type": "string", "required": True},
        "body": {"type": "string", "required": True},
    },
    "timeout": "1m",
    "retries": ATTEMPTS - 1,
    "backoff": BACKOFF,
    "concurrency": {"key": "webhook:{{webhook}}", "limit": 4},
    "on_interrupt": "requeue",
    "tags": ["webhooks"],
}
"""The delivery jobs' template snapshot (their ``spec``)."""


def delivery_key(webhook: str) -> str:
    """The concurrency key of a webhook's deliveries (at most 4 at once per receiver)."""
    return f"webhook:{webhook}"


def message_id(webhook: str, event_id: int) -> str:
    """``webhook-id``: one per event and webhook, the same on every retry."""
    return f"msg_{event_id}_{webhook}"


def event_types(row: Any) -> list[str]:
    """The public types of a feed row, most specific first: ``job.failed``, or
    ``approval.requested`` before ``job.submitted`` for a job that starts gated."""
    kind = row["kind"]
    if "." in kind:
        return [kind]
    if not row["job_id"]:
        return []  # freezes, refused submits: audit facts, not deliverable
    types = [f"job.{kind}"]
    if row["state"] == JobState.AWAITING_APPROVAL.value and kind in ("submitted", "parked"):
        types.insert(0, "approval.requested")
    return types


def template_of(row: Any) -> str | None:
    if row["job_template"] is not None:
        return str(row["job_template"])
    data = row["data"]
    value = data.get("template") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def body_of(event_type: str, row: Any) -> str:
    """The JSON body: the event and its job's summary; never parameters, never secrets."""
    job = None
    if row["job_template"] is not None:
        error = row["job_error"]
        job = {
            "id": row["job_id"],
            "template": row["job_template"],
            "state": row["job_state"],
            "submitted_by": row["job_submitted_by"],
            "created_at": iso(row["job_created_at"]),
            "finished_at": iso(row["job_finished_at"]),
            "attempts": row["job_attempts"],
            "schedule": row["job_schedule"],
            "error": error.get("message") if isinstance(error, dict) else None,
        }
    event = {
        "id": row["id"],
        "kind": row["kind"],
        "job_id": row["job_id"] or None,
        "state": row["state"],
        "attempt": row["attempt"],
        "actor": row["actor"],
        "message": row["message"],
        "data": row["data"],
    }
    payload = {
        "type": event_type,
        "timestamp": iso(row["ts"]),
        "data": {"event": event, "job": job},
    }
    return json.dumps(payload, separators=(",", ":"), default=str)


def visible_upto(cursor: int, feed: Sequence[Any], now: datetime) -> int:
    """How many of ``feed`` (ids after ``cursor``, ascending) the cursor may pass: it stops
    before a hole in the ids unless the event after the hole is older than ``GAP_WAIT``."""
    expected = cursor + 1
    for i, row in enumerate(feed):
        if row["id"] != expected and now - row["ts"] < GAP_WAIT:
            return i
        expected = row["id"] + 1
    return len(feed)


def plan_deliveries(
    hook: Webhook, cursor: int, feed: Sequence[Any], now: datetime
) -> tuple[list[dict[str, Any]], int]:
    """The delivery job rows for the events ``hook`` wants, and where its cursor goes."""
    usable = feed[: visible_upto(cursor, feed, now)]
    rows: list[dict[str, Any]] = []
    for row in usable:
        if row["job_template"] == DELIVERY_TEMPLATE:
            continue  # a delivery's own events would deliver forever
        template = template_of(row)
        wanted = [t for t in event_types(row) if hook.wants(t, template)]
        if wanted:
            rows.append(delivery_row(hook.name, row["id"], wanted[0], body_of(wanted[0], row), now))
    return rows, (usable[-1]["id"] if usable else cursor)


def delivery_row(
    webhook: str, event_id: int, event_type: str, body: str, now: datetime
) -> dict[str, Any]:
    """A queued delivery job (without its id) for ``store.jobs.insert_in``."""
    return {
        "template": DELIVERY_TEMPLATE,
        "state": JobState.QUEUED.value,
        "priority": parse_priority("normal"),
        "params": {"webhook": webhook, "event": event_id, "type": event_type, "body": body},
        "secret_blob": None,
        "spec": DELIVERY_SPEC,
        "run_at": now,
        "depends_on": [],
        "tags": ",webhooks,",
        "attempts": 0,
        "max_retries": ATTEMPTS - 1,
        "backoff_s": parse_duration(BACKOFF),
        "timeout_s": parse_duration(DELIVERY_SPEC["timeout"]),
        "concurrency_key": delivery_key(webhook),
        "concurrency_limit": 4,
        "on_interrupt": "requeue",
        "dry_run": False,
        "submitted_by": "",
        "created_at": now,
        "updated_at": now,
    }


@dataclass(frozen=True)
class WebhookView:
    """A declared webhook and what the store knows of it; the URL without credentials."""

    name: str
    url: str
    events: tuple[str, ...]
    templates: tuple[str, ...]
    state: str
    """enabled | disabled | new (no dispatcher has seen it yet)"""
    failures: int
    disabled_at: datetime | None
    disabled_reason: str | None
    last_delivery_at: datetime | None
    last_status: str | None
    pending: int
    """Deliveries queued or waiting for a retry."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["events"], d["templates"] = list(self.events), list(self.templates)
        d["disabled_at"] = iso(self.disabled_at)
        d["last_delivery_at"] = iso(self.last_delivery_at)
        return d


@dataclass(frozen=True)
class TestDelivery:
    """What ``webhooks test`` sent and how the receiver answered."""

    webhook: str
    url: str
    message_id: str
    ok: bool
    status: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class WebhooksMixin(ServiceHost):
    """list / test / enable, and the warnings the console header and ``health`` show."""

    def declared_webhook(self, name: str) -> Webhook:
        for hook in self.settings.webhooks:
            if hook.name == name:
                return hook
        known = ", ".join(h.name for h in self.settings.webhooks) or "none declared"
        raise NotFound(f"no webhook '{name}' in opsconsole.toml (known: {known})")

    def webhooks(self) -> list[WebhookView]:
        """Every declared webhook with its state, in the file's order."""
        hooks = self.settings.webhooks
        if not hooks:
            return []
        stored = webhook_store.states(self.db)
        pending = webhook_store.pending_deliveries(
            self.db, [delivery_key(h.name) for h in hooks], [s.value for s in LIVE]
        )
        out = []
        for hook in hooks:
            row = stored.get(hook.name)
            state = "new" if row is None else "disabled" if row["disabled_at"] else "enabled"
            out.append(
                WebhookView(
                    name=hook.name,
                    url=hook.shown_url(),
                    events=hook.events,
                    templates=hook.templates,
                    state=state,
                    failures=row["failures"] if row else 0,
                    disabled_at=row["disabled_at"] if row else None,
                    disabled_reason=row["disabled_reason"] if row else None,
                    last_delivery_at=row["last_delivery_at"] if row else None,
                    last_status=row["last_status"] if row else None,
                    pending=pending.get(delivery_key(hook.name), 0),
                )
            )
        return out

    def enable_webhook(self, name: str) -> WebhookView:
        """Re-enable a webhook that disabled itself; the events since are delivered now."""
        self.declared_webhook(name)
        self.authorize("webhooks")
        webhook_store.ensure(self.db, [name], self.now())
        webhook_store.enable(self.db, name, actor=self.identity.name, now=self.now())
        return next(v for v in self.webhooks() if v.name == name)

    def test_webhook(self, name: str) -> TestDelivery:
        """Send a signed ``webhook.test`` message now and say how the receiver answered.
        It counts for nothing: a disabled webhook stays disabled until ``enable``."""
        hook = self.declared_webhook(name)
        self.authorize("webhooks")
        secret = resolve_secret(hook.secret, f"webhook '{name}'")
        now = self.now()
        msg_id = f"msg_test_{int(now.timestamp())}_{name}"
        body = json.dumps(
            {
                "type": "webhook.test",
                "timestamp": iso(now),
                "data": {"webhook": name, "sent_by": self.identity.name},
            },
            separators=(",", ":"),
        )
        sent = send(hook.url, secret, msg_id, body, now)
        return TestDelivery(name, hook.shown_url(), msg_id, sent.ok, sent.status)

    def webhook_warnings(self) -> list[str]:
        """One line per disabled webhook: what the console header and ``health`` say."""
        if not self.settings.webhooks:
            return []
        stored = webhook_store.states(self.db)
        return [
            f"webhook {h.name} disabled: {row['disabled_reason'] or 'too many failures'}; "
            f"opsconsole webhooks enable {h.name}"
            for h in self.settings.webhooks
            if (row := stored.get(h.name)) is not None and row["disabled_at"] is not None
        ]

    def check_webhook_secrets(self) -> None:
        """Raise InvalidParams (one line) when a webhook's secret does not resolve here: a
        worker that cannot sign would fail every delivery until the webhook disables itself."""
        problems = unresolved(self.settings.webhooks)
        if problems:
            raise InvalidParams(problems[0])

    def webhook_health(self) -> list[HealthCheck]:
        """``health``'s webhooks line: failing while any webhook is disabled."""
        if not self.settings.webhooks:
            return []
        warnings = self.webhook_warnings() + unresolved(self.settings.webhooks)
        if warnings:
            return [HealthCheck("webhooks", False, "; ".join(warnings))]
        return [HealthCheck("webhooks", True, f"{len(self.settings.webhooks)} enabled")]
