"""Schedules: recurring jobs from a template, and the ledger of every fire. OpsService's mixin.

(Foundation stub: the schedules helper fills this in.)
"""

from __future__ import annotations

from opsconsole.core.host import ServiceHost


class SchedulesMixin(ServiceHost):
    """add / list / show / pause / resume / remove / run, and the fire itself."""
