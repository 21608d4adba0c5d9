"""The ``[[webhooks]]`` tables of opsconsole.toml (read by ``config``, which core imports).

The only place a webhook declaration is validated and its secret reference resolved. The
file holds a *reference* (``env:NAME`` or ``file:/path``), never the secret. Loading the
file checks the reference's form only: every command reads this file, and an operator whose
shell lacks the variable must still list jobs. The secret itself is resolved where it is
used: a worker refuses to start without it (it is the one that signs deliveries), and
``health`` and ``webhooks test`` say which reference does not resolve.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opsconsole.core.errors import InvalidParams

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
KEYS = ("name", "url", "events", "templates", "secret")

JOB_KINDS = (
    "submitted", "started", "succeeded", "partial", "failed", "timed_out", "cancelled",
    "interrupted", "rejected", "retried", "requeued", "released", "approved", "parked",
    "cancel_requested", "expired", "withdrawn", "break_glass",
)  # fmt: skip
"""Job events a webhook can ask for, as ``job.KIND``."""
OTHER_TYPES = (
    "approval.requested",
    "check.changed",
    "schedule.added",
    "schedule.paused",
    "schedule.resumed",
    "schedule.removed",
    "webhook.disabled",
    "webhook.enabled",
)
EVENT_TYPES: tuple[str, ...] = tuple(f"job.{k}" for k in JOB_KINDS) + OTHER_TYPES
"""Every type a delivery can carry; a webhook's ``events`` are these names or globs of them
(``job.*``, ``*``), and a glob that matches none of them is a typo, refused."""


@dataclass(frozen=True)
class Webhook:
    """One declared webhook: where it posts, which events, and its secret by reference."""

    name: str
    url: str
    events: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    secret: str = ""

    def wants(self, event_type: str, template: str | None) -> bool:
        """Does this webhook deliver an event of this type (about this template)?"""
        if not any(fnmatch.fnmatchcase(event_type, pattern) for pattern in self.events):
            return False
        if not self.templates:
            return True
        return template is not None and any(
            fnmatch.fnmatchcase(template, pattern) for pattern in self.templates
        )

    def shown_url(self) -> str:
        """The URL without user name, password or query string (they may carry a token)."""
        return public_url(self.url)


def public_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_reference(reference: str, where: str) -> None:
    """Refuse a secret that is not a reference (``env:NAME`` or ``file:/path``)."""
    kind, _, ref = reference.partition(":")
    if kind not in ("env", "file") or not ref:
        raise InvalidParams(f"{where}: secret must be env:NAME or file:/path (never the secret)")


def unresolved(hooks: tuple[Webhook, ...]) -> list[str]:
    """One line per webhook whose secret reference does not resolve here and now."""
    out = []
    for hook in hooks:
        try:
            resolve_secret(hook.secret, f"webhook '{hook.name}'")
        except InvalidParams as exc:
            out.append(str(exc))
    return out


def resolve_secret(reference: str, where: str) -> bytes:
    """The signing key a reference names: ``env:NAME``, ``file:/path``; a ``whsec_`` value is
    base64 (Standard Webhooks), any other value is used as its bytes. Refused in one line."""
    import base64
    import binascii

    kind, _, ref = reference.partition(":")
    if kind == "env" and ref:
        value = os.environ.get(ref)
        if not value:
            raise InvalidParams(f"{where}: secret: environment variable {ref} is not set")
    elif kind == "file" and ref:
        try:
            value = Path(ref).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise InvalidParams(f"{where}: secret: cannot read {ref}: {why}") from None
        if not value:
            raise InvalidParams(f"{where}: secret: {ref} is empty")
    else:
        raise InvalidParams(f"{where}: secret must be env:NAME or file:/path (never the secret)")
    if value.startswith("whsec_"):
        try:
            return base64.b64decode(value.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParams(f"{where}: secret: whsec_ value is not base64") from None
    return value.encode()


def _str_list(value: Any, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidParams(f"{where}: {key} must be a list of non-empty strings")
    return tuple(value)


def parse_webhook(table: Any, origin: str, index: int) -> Webhook:
    """One ``[[webhooks]]`` table; messages name the file, the webhook and the field."""
    where = f"{origin}: webhooks[{index}]"
    if not isinstance(table, dict):
        raise InvalidParams(f"{where} must be a table")
    for key in table:
        if key not in KEYS:
            raise InvalidParams(f"{where}: unknown key '{key}' (known: {', '.join(KEYS)})")
    name = table.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidParams(f"{where}: name must match {NAME_RE.pattern}")
    where = f"{origin}: webhook '{name}'"
    url = table.get("url")
    if not isinstance(url, str):
        raise InvalidParams(f"{where}: url is required (http:// or https://)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParams(f"{where}: url must be http:// or https:// with a host")
    events = _str_list(table.get("events"), where, "events")
    for pattern in events:
        if not any(fnmatch.fnmatchcase(t, pattern) for t in EVENT_TYPES):
            raise InvalidParams(
                f"{where}: events: '{pattern[:40]}' names no event "
                f"(e.g. job.failed, approval.requested, check.changed, job.*)"
            )
    templates = _str_list(table["templates"], where, "templates") if "templates" in table else ()
    secret = table.get("secret")
    if not isinstance(secret, str):
        raise InvalidParams(f"{where}: secret is required (env:NAME or file:/path)")
    check_reference(secret, where)
    return Webhook(name=name, url=url, events=events, templates=templates, secret=secret)


def parse_webhooks(tables: Any, origin: str) -> tuple[Webhook, ...]:
    """``[[webhooks]]``; each bad field is refused in one line naming it."""
    if not isinstance(tables, list):
        raise InvalidParams(f"{origin}: webhooks must be [[webhooks]] tables")
    out: list[Webhook] = []
    for i, table in enumerate(tables):
        hook = parse_webhook(table, origin, i)
        if any(h.name == hook.name for h in out):
            raise InvalidParams(f"{origin}: webhook '{hook.name}' is declared twice")
        out.append(hook)
    return tuple(out)
