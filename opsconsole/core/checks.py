"""Recurring checks: a job whose outcome is a status (ok, warning, critical, unknown).
OpsService's mixin.

(Foundation stub: the checks helper fills this in.)
"""

from __future__ import annotations

from opsconsole.core.host import ServiceHost


class ChecksMixin(ServiceHost):
    """The checks' current statuses and their recent results."""
