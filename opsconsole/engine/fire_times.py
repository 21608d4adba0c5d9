"""When a cron schedule fires: APScheduler 3's triggers, one fire per local wall-clock time.

Measured with APScheduler 3.11 in Europe/Berlin: a daily 02:30 fires once on the
spring-forward day (03:30, the first time that exists) and twice on the fall-back day (02:30
summer time, then 02:30 winter time). And the two 02:30s differ only in ``fold``, which
``datetime`` arithmetic drops: stepping one microsecond past the second one in local time
lands an hour back, before the first, and a loop over the trigger never ends. An operator who
asks for 02:30 means one run that night.

So APScheduler computes wall-clock times only, in UTC where no clock jumps (from the fields
``core/cron.py`` gives it: crontab's meaning, never APScheduler's own day numbers), and this
module places each wall-clock time in the zone itself: a time that comes twice is its first
instant, a time the spring-forward skips moves forward by the gap (as APScheduler does), and
instants that coincide fire once. The only place that turns a schedule into instants; time
is a parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from opsconsole.core.cron import CronSpec

_TICK = timedelta(microseconds=1)
_MARGIN = timedelta(hours=3)
"""More than any clock change shifts a wall-clock time: how far around ``after`` and the
last fire found the wall-clock times are looked at, so none is missed near a change."""


def wall_trigger(spec: CronSpec) -> Any:
    """An APScheduler trigger over wall-clock times (kept in UTC, where no clock jumps)."""
    triggers = [CronTrigger(timezone=UTC, **fields) for fields in spec.trigger_fields()]
    return triggers[0] if len(triggers) == 1 else OrTrigger(triggers)


def place(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant (aware UTC) a naive wall-clock time stands for in ``zone``: its first
    occurrence when it comes twice, moved forward by the gap when the clock skips it."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def fire_times(
    spec: CronSpec,
    zone: ZoneInfo,
    after: datetime,
    *,
    until: datetime | None = None,
    limit: int = 5,
) -> list[datetime]:
    """Fire times (aware UTC, ascending) strictly after ``after`` and before ``until``, at most
    ``limit``: one per wall-clock time, whatever the clock changes in between."""
    if after.utcoffset() is None or (until is not None and until.utcoffset() is None):
        raise ValueError("fire_times needs aware datetimes")
    trigger = wall_trigger(spec)

    def wall_of(instant: datetime) -> datetime:
        return instant.astimezone(zone).replace(tzinfo=UTC)  # its wall clock, read as UTC

    cursor = wall_of(after) - _MARGIN
    stop = wall_of(until) + _MARGIN if until is not None else None
    found: set[datetime] = set()
    while True:
        wall = trigger.get_next_fire_time(None, cursor)
        if wall is None or (stop is not None and wall > stop):
            break
        instant = place(wall.replace(tzinfo=None), zone)
        if instant > after and (until is None or instant < until):
            found.add(instant)
        if len(found) >= limit:
            # a later wall-clock time can still land earlier (moved forward by a gap)
            stop = wall + _MARGIN if stop is None else min(stop, wall + _MARGIN)
        cursor = wall + _TICK
    return sorted(found)[:limit]
