"""The store's upkeep in a running pool: retention in small batches, once across processes.

(Foundation stub: the maintenance helper fills this in.)
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsconsole.core.service import OpsService


def maintain(service: OpsService, now: datetime) -> None:
    """Prune what retention allows, a batch at a time."""
