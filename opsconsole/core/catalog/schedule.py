"""A template's ``schedule:`` block: the only place it is parsed and checked.

A template may say when it runs by itself (``cron`` with ``tz``, or ``every``), with the
same policies ``schedules add`` takes. The block is checked here like the rest of the
schema (one line naming the key); the parameters against the template's own ones when the
schedule is made (``core/schedules.py``), as for any schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opsconsole.core import cron as crontab  # a module: core.cron imports the catalog too
from opsconsole.core.catalog.durations import parse_duration
from opsconsole.core.catalog.errors import SchemaError
from opsconsole.core.catalog.messages import described, printable
from opsconsole.core.errors import InvalidParams

SCHEDULE_KEYS = ("cron", "tz", "every", "jitter", "catchup", "overlap", "params")
CATCHUPS = ("latest", "all", "skip")
OVERLAPS = ("skip", "queue", "allow")


@dataclass(frozen=True)
class ScheduleSpec:
    """What a ``schedule:`` block declares (durations kept as written)."""

    cron: str | None = None
    tz: str | None = None
    every: str | None = None
    jitter: str | None = None
    catchup: str = "latest"
    overlap: str = "skip"
    params: dict[str, Any] = field(default_factory=dict)


def parse_schedule(value: Any) -> ScheduleSpec | None:
    """The block's spec (None when absent); SchemaError naming the key on a mistake."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SchemaError(
            f"schedule must be a mapping of keys, got {described(value)}", ("schedule",)
        )
    for key in value:
        if key not in SCHEDULE_KEYS:
            shown = printable(key) if isinstance(key, str) else described(key)
            raise SchemaError(
                f"unknown key 'schedule.{shown}' (known: {', '.join(SCHEDULE_KEYS)})",
                ("schedule", key if isinstance(key, str) else 0),
            )
    if ("cron" in value) == ("every" in value):
        raise SchemaError("schedule: give exactly one of cron and every", ("schedule",))
    cron, tz, every, jitter = (_text(value, k) for k in ("cron", "tz", "every", "jitter"))
    _checked("cron", cron, crontab.parse_cron)
    _checked("tz", tz, crontab.check_zone)
    if tz is not None and cron is None:
        raise SchemaError("schedule.tz only applies to a cron schedule", ("schedule", "tz"))
    if _checked("every", every, parse_duration) == 0:
        raise SchemaError("schedule.every must be above zero", ("schedule", "every"))
    _checked("jitter", jitter, parse_duration)
    catchup = value.get("catchup", "latest")
    overlap = value.get("overlap", "skip")
    for key, got, allowed in (("catchup", catchup, CATCHUPS), ("overlap", overlap, OVERLAPS)):
        if got not in allowed:
            raise SchemaError(
                f"schedule.{key} must be one of {', '.join(allowed)}, got {described(got)}",
                ("schedule", key),
            )
    params = value.get("params", {})
    if not isinstance(params, dict):
        raise SchemaError(
            f"schedule.params must be a mapping, got {described(params)}", ("schedule", "params")
        )
    return ScheduleSpec(cron, tz, every, jitter, catchup, overlap, dict(params))


def _text(value: dict[str, Any], key: str) -> str | None:
    got = value.get(key)
    if got is None:
        return None
    if isinstance(got, bool) or not isinstance(got, str | int | float):
        raise SchemaError(f"schedule.{key} must be text, got {described(got)}", ("schedule", key))
    return str(got)


def _checked(key: str, text: str | None, check: Any) -> Any:
    if text is None:
        return None
    try:
        return check(text)
    except InvalidParams as exc:
        raise SchemaError(f"schedule.{key}: {exc}", ("schedule", key)) from None
