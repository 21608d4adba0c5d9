"""Crontab expressions with crontab's own meaning: the only place that reads them.

Operators write cron the way ``crontab(5)`` defines it, so that is what this accepts:
five fields (minute, hour, day of month, month, day of week), ``*``, lists, ranges and
steps (``*/15``, ``1-30/5``, ``5/10``), month and day names (``jan``, ``mon-fri``), day of
week 0 **and** 7 for Sunday, and the macros ``@hourly``, ``@daily``/``@midnight``,
``@weekly``, ``@monthly``, ``@yearly``/``@annually``. When both day fields are restricted a
time fires when *either* matches, as in Vixie cron.

APScheduler 3 computes fire times, but its own day-of-week numbering (0 is Monday) and its
AND of the two day fields differ from crontab's, so they are never exposed: ``trigger_fields``
gives the fields APScheduler needs, days by name, one set per alternative (two when both day
fields are restricted, for an ``OrTrigger``). Pure: no I/O, no APScheduler import.

Every refusal is one line naming the field (``cron day-of-month: 32 is out of range 1-31``);
an expression that can never fire (``0 0 30 2 *``) is refused too.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from opsconsole.core.catalog.messages import printable
from opsconsole.core.errors import InvalidParams

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
"""Crontab's day numbers: 0 (and 7) is Sunday."""

_APS_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
"""Days as APScheduler is told them: by name, so its Monday-first numbers never matter."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    """Names for ``low``, ``low + 1``, ...; empty when the field takes numbers only."""
    what: str = "a number"


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, MONTHS, "a month (1-12 or jan-dec)"),
    _Field("day-of-week", 0, 7, DAYS, "a day (0-7 or sun-sat)"),
)


@dataclass(frozen=True)
class CronSpec:
    """A parsed crontab expression: the values each field allows."""

    expr: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0-6, Sunday first (a 7 given is read as 0)."""
    days_restricted: bool
    """The day-of-month field was not ``*``: with a restricted day of week, either fires."""
    weekdays_restricted: bool

    def trigger_fields(self) -> list[dict[str, str]]:
        """APScheduler ``CronTrigger`` keyword arguments, one dict per alternative.

        Crontab fires when either restricted day field matches; APScheduler ANDs them, so
        that case is two triggers (one by day of month, one by day of week) to OR.
        """
        base = {
            "minute": _join(self.minutes),
            "hour": _join(self.hours),
            "month": _join(self.months),
        }
        by_day = {**base, "day": _join(self.days)}
        by_weekday = {**base, "day_of_week": ",".join(_APS_DAYS[d] for d in sorted(self.weekdays))}
        if self.days_restricted and self.weekdays_restricted:
            return [by_day, by_weekday]
        if self.weekdays_restricted:
            return [by_weekday]
        return [by_day]


def parse_cron(expr: str) -> CronSpec:
    """Read a crontab expression; ``InvalidParams`` naming the field when it is not one."""
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidParams("cron: the expression is empty (five fields: m h dom mon dow)")
    text = " ".join(expr.split())
    if text.startswith("@"):
        if text.lower() not in MACROS:
            known = ", ".join(MACROS)
            raise InvalidParams(f"cron: unknown macro {printable(text)!r} (use one of {known})")
        text = MACROS[text.lower()]
    parts = text.split(" ")
    if len(parts) != len(_FIELDS):
        raise InvalidParams(
            f"cron: {printable(expr)!r} has {len(parts)} field(s); crontab takes 5 "
            "(minute hour day-of-month month day-of-week)"
        )
    values = [_parse_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)]
    minutes, hours, days, months, weekdays = values
    weekdays = frozenset(0 if d == 7 else d for d in weekdays)
    spec = CronSpec(
        expr=" ".join(expr.split()),
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=weekdays,
        days_restricted=parts[2] != "*",
        weekdays_restricted=parts[4] != "*",
    )
    _check_fires(spec)
    return spec


def check_zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``; ``InvalidParams`` naming the field when there is none."""
    try:
        if not name or name != name.strip() or name.startswith(("/", ".")):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidParams(
            f"tz: unknown time zone {printable(name)!r} (an IANA name such as Europe/Berlin)"
        ) from None


def _join(values: frozenset[int]) -> str:
    return ",".join(str(v) for v in sorted(values))


def _number(text: str, field: _Field) -> int:
    lowered = text.lower()
    if field.names and lowered in field.names:
        return field.low + field.names.index(lowered)
    if not text.isdigit():
        raise InvalidParams(f"cron {field.name}: {printable(text)!r} is not {field.what}")
    value = int(text)
    if not field.low <= value <= field.high:
        raise InvalidParams(f"cron {field.name}: {value} is out of range {field.low}-{field.high}")
    return value


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    out: set[int] = set()
    for item in text.split(","):
        if not item:
            raise InvalidParams(f"cron {field.name}: an empty item in {printable(text)!r}")
        span, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise InvalidParams(
                    f"cron {field.name}: step {printable(step_text)!r} must be a number above 0"
                )
            step = int(step_text)
        if span == "*":
            first, last = field.low, field.high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = _number(a, field), _number(b, field)
            if first > last:
                raise InvalidParams(f"cron {field.name}: range {printable(span)!r} runs backwards")
        else:
            first = _number(span, field)
            # crontab reads "5/10" as "5-max/10"; a lone value is itself
            last = field.high if slash else first
        out.update(range(first, last + 1, step))
    return frozenset(out)


def _check_fires(spec: CronSpec) -> None:
    """Refuse a day-of-month and month pair that no calendar has (``30 2``): it never fires.

    Only when the day of week does not fire on its own (crontab ORs restricted day fields).
    The 29th of February counts: it comes every leap year.
    """
    if spec.weekdays_restricted and spec.days_restricted:
        return
    if any(day <= _longest(month) for month in spec.months for day in spec.days):
        return
    raise InvalidParams(
        f"cron day-of-month: {printable(spec.expr)!r} never fires (no month it names has that day)"
    )


def _longest(month: int) -> int:
    return 29 if month == 2 else calendar.monthrange(2001, month)[1]
