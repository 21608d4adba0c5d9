"""Durations (``30s``, ``1h30m``) and priorities (``high`` or 0..100).

The only place that parses or formats these forms, for templates and the faces alike. Pure:
no I/O and no knowledge of templates.
"""

from __future__ import annotations

import math
import re

from opsconsole.core.catalog.messages import printable
from opsconsole.core.errors import InvalidParams

PRIORITIES: dict[str, int] = {"low": 1, "normal": 5, "high": 10, "critical": 15}


_PLAIN_SECONDS_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DURATION_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?[dhms])+")
_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([dhms])")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: str | int | float) -> float:
    """Seconds from ``30s``/``10m``/``2h``/``1d``/``1h30m`` or a plain number of seconds."""
    seconds: float | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = None
    elif isinstance(value, str):
        text = re.sub(r"\s+", "", value)
        if _PLAIN_SECONDS_RE.fullmatch(text):
            seconds = float(text)
        elif _DURATION_RE.fullmatch(text):
            seconds, previous = 0.0, math.inf
            for number, unit in _DURATION_PART_RE.findall(text):
                size = _UNIT_SECONDS[unit]
                if size >= previous:  # "30m1h" or "1h1h" is a typo, not a sum
                    seconds = None
                    break
                previous = size
                seconds += float(number) * size
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise InvalidParams(
            f"invalid duration '{printable(value)}': use forms like 30s, 10m, 2h, 1d"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest ``parse_duration`` form, to millisecond precision."""
    if not math.isfinite(seconds):
        return str(seconds)
    sign = "-" if seconds < 0 else ""
    whole, millis = divmod(round(abs(seconds) * 1000), 1000)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if secs or millis or not parts:
        text = f"{secs}.{millis:03d}".rstrip("0") if millis else str(secs)
        parts.append(f"{text}s")
    return sign + "".join(parts)


def parse_priority(value: str | int) -> int:
    """A priority name or an integer 0..100 (also as a numeric string, as typed on a CLI)."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in PRIORITIES:
            return PRIORITIES[text]
        if re.fullmatch(r"[0-9]{1,6}", text):
            number = int(text)
    if number is None or not 0 <= number <= 100:
        raise InvalidParams(
            f"invalid priority '{printable(value)}': use low, normal, high, critical "
            "or an integer 0..100"
        )
    return number


def priority_name(value: int) -> str:
    for name, number in PRIORITIES.items():
        if number == value:
            return name
    return str(value)
