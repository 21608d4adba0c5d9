"""The webhooks' dispatcher: new events -> delivery jobs, from a cursor that skips nothing.

(Foundation stub: the webhooks helper fills this in.)
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsconsole.core.service import OpsService


def dispatch(service: OpsService, now: datetime) -> None:
    """Match the events after each webhook's cursor and queue their deliveries."""
