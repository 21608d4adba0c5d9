"""Signing and sending one webhook message (Standard Webhooks): the only HTTP client of
webhooks, used by the delivery handler and by ``webhooks test``.

A message is ``webhook-id`` (stable across retries, so receivers can drop duplicates),
``webhook-timestamp`` (this attempt's, in seconds) and ``webhook-signature: v1,<base64
HMAC-SHA256 of "id.timestamp.body">``. Timeouts are explicit; redirects are not followed
(a redirect is an answer that is not 2xx, i.e. a failure, never a resend elsewhere).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0
USER_AGENT = "opsconsole-webhooks"


@dataclass(frozen=True)
class Sent:
    """How one attempt went: ``ok`` for a 2xx answer; ``status`` says it in words."""

    ok: bool
    status: str
    code: int | None = None


def scrub(text: str, url: str) -> str:
    """``text`` without the URL's credentials or query (an error may quote the URL)."""
    from opsconsole.core.webhook_config import public_url

    parts = urlsplit(url)
    text = text.replace(url, public_url(url))
    if "@" in parts.netloc:
        text = text.replace(parts.netloc, parts.netloc.rpartition("@")[2])
    if parts.query:
        text = text.replace("?" + parts.query, "")
    return text


def signature(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: bytes, msg_id: str, now: datetime, body: bytes) -> dict[str, str]:
    timestamp = int(now.timestamp())
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }


def send(url: str, secret: bytes, msg_id: str, body: str, now: datetime) -> Sent:
    """POST one signed message; never raises for what the network or the receiver does."""
    import httpx

    # httpx logs each request's full URL at INFO: a token in a webhook URL would reach the
    # worker's journal. Our own log line names the URL without its credentials instead.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    data = body.encode()
    timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            resp = client.post(url, content=data, headers=headers(secret, msg_id, now, data))
    except httpx.TimeoutException as exc:
        return Sent(False, f"timed out ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        why = scrub(f"{type(exc).__name__}: {exc}", url)
        return Sent(False, f"cannot reach the receiver: {why}"[:300])
    status = f"{resp.status_code} {resp.reason_phrase}".strip()
    return Sent(200 <= resp.status_code < 300, status, resp.status_code)
