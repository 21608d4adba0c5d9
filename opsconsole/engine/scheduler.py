"""The schedules' tick: fire what is due at ``now`` (time is a parameter; tests set it).

(Foundation stub: the schedules helper fills this in.)
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsconsole.core.service import OpsService


def tick(service: OpsService, now: datetime) -> None:
    """Fire every schedule due at ``now``, once across processes; record what was not run."""
