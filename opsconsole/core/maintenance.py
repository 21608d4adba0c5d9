"""Retention, pruning, backups and store checks. OpsService's mixin.

(Foundation stub: the maintenance helper fills this in.)
"""

from __future__ import annotations

from opsconsole.core.host import ServiceHost


class MaintenanceMixin(ServiceHost):
    """prune / backup / vacuum / check of the store."""
