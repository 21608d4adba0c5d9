"""When a schedule fires, and what each fire time that has come becomes: the ledger's plan.

Pure functions of a schedule's row, ``now`` and the fire-time function (APScheduler's, from
the engine, given as ``FireTimes``: the domain never imports it). The only place that knows
the grace after which a fire is late, and the catch-up policies.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from opsconsole.core.cron import CronSpec, check_zone, parse_cron
from opsconsole.core.store.schedules import FIRED, MISSED, SKIPPED

GRACE = timedelta(seconds=60)
"""A fire time older than this when a tick finds it is late (the store or every worker was
down): its schedule's catch-up policy decides whether it runs. Ticks come at least every
second, so an on-time fire is never this old."""
MAX_FIRES = 1000
"""Fire times one tick (or one resume, skip or run-missed) handles per schedule; the rest
wait for the next, so a long outage never makes one huge transaction."""


class FireTimes(Protocol):
    """When a cron schedule fires: ``engine.fire_times.fire_times``'s signature."""

    def __call__(
        self,
        spec: CronSpec,
        zone: ZoneInfo,
        after: datetime,
        *,
        until: datetime | None = None,
        limit: int = 5,
    ) -> list[datetime]: ...


def following(
    row: Mapping[str, Any], after: datetime, times: FireTimes, *, limit: int = 1
) -> list[datetime]:
    """The schedule's fire times strictly after ``after`` (at most ``limit``).

    An interval schedule fires on a grid anchored at its cursor (or, before its first fire,
    at ``after`` itself plus one interval).
    """
    every = row.get("every_s")
    if every:
        step = timedelta(seconds=every)
        anchor = row.get("next_fire_at")
        if anchor is None:  # the first fire: an interval from now, on a whole second
            first = (after + step).replace(microsecond=0)
        else:
            k = max(0, (after - anchor) // step + 1)
            first = anchor + k * step
        return [first + i * step for i in range(limit)]
    return times(parse_cron(row["cron"]), check_zone(row["tz"]), after, limit=limit)


def due_times(
    row: Mapping[str, Any], now: datetime, times: FireTimes, *, cap: int | None = None
) -> tuple[list[datetime], datetime | None]:
    """The fire times from the cursor up to ``now`` (at most ``cap``) and the cursor after
    them: the first fire time not yet due (or the next one past the cap)."""
    cap = MAX_FIRES if cap is None else cap
    cursor = row["next_fire_at"]
    if cursor is None or cursor > now:
        return [], cursor
    out = [cursor]
    while len(out) < cap:
        more = following(row, out[-1], times, limit=min(cap - len(out), 100))
        more = [t for t in more if t <= now]
        if not more:
            break
        out.extend(more)
    out = out[:cap]
    nxt = following(row, out[-1], times, limit=1)
    return out, (nxt[0] if nxt else None)


def plan(
    catchup: str, due: list[datetime], now: datetime, *, complete: bool = True
) -> list[tuple[datetime, str, str]]:
    """What each due fire time becomes, by the catch-up policy: (time, status, reason).

    On-time fires (within ``GRACE`` of ``now``) fire. Late ones: ``all`` fires each; ``skip``
    records them skipped; ``latest`` fires the newest late one when no on-time fire runs and
    records the others missed. ``complete`` is False when more due times wait past the cap:
    then none of these late ones is the newest, and ``latest`` fires none of them.
    """
    late = [t for t in due if t < now - GRACE]
    on_time = [t for t in due if t >= now - GRACE]
    out: list[tuple[datetime, str, str]] = []
    down = "missed: the store or every worker was down"
    for t in late:
        if catchup == "all":
            out.append((t, FIRED, "late: caught up (catch-up all)"))
        elif catchup == "skip":
            out.append((t, SKIPPED, "late: catch-up policy skip"))
        elif complete and not on_time and t == late[-1]:
            out.append((t, FIRED, "late: the newest missed fire (catch-up latest)"))
        else:
            out.append((t, MISSED, down.removeprefix("missed: ")))
    out.extend((t, FIRED, "") for t in on_time)
    return out
