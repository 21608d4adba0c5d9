"""The ``[[webhooks]]`` tables of opsconsole.toml (read by ``config``, which core imports).

(Foundation stub: the webhooks helper fills this in.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Webhook:
    """One declared webhook: where it posts, which events, and its secret by reference."""

    name: str
    url: str
    events: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    secret: str = ""


def parse_webhooks(tables: Any, origin: str) -> tuple[Webhook, ...]:
    """``[[webhooks]]``; each bad field is refused in one line naming it."""
    return ()
