"""A template's ``check:`` key and the vocabulary of a check's outcome: the only place both
are defined.

A check is a job whose outcome is a status. The status decides the job's own state, so a
job listing and a check listing never disagree: ``ok`` succeeded, ``warning`` partial,
``critical`` and ``unknown`` failed (the check could not say all is well).
"""

from __future__ import annotations

from typing import Any

from opsconsole.core.catalog.messages import described
from opsconsole.core.errors import InvalidParams

STATUSES = ("ok", "warning", "critical", "unknown")
"""A check's statuses, in the order of the Nagios plugin exit codes 0, 1, 2, 3."""
SEVERITY = {"ok": 0, "unknown": 1, "warning": 2, "critical": 3}
"""The worst of several statuses: critical, then warning, then unknown (as Nagios ranks them)."""
OUTCOMES = {"ok": "succeeded", "warning": "partial", "critical": "failed", "unknown": "failed"}
"""The job outcome a status ends the check's job with."""
CHECK_RUNNERS = ("shell", "python")


def parse_check(value: Any, runner: str) -> bool:
    """``check: true`` marks a template's jobs as checks; only shell and python jobs can be."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidParams(f"must be true or false, got {described(value)}")
    if value and runner not in CHECK_RUNNERS:
        raise InvalidParams(f"only for runner {' or '.join(CHECK_RUNNERS)}")
    return value


def is_check(spec: Any) -> bool:
    """Whether a job's template snapshot (its ``spec``) declares it a check."""
    return isinstance(spec, dict) and spec.get("check") is True


def status_of_exit(code: int | None) -> str:
    """The Nagios plugin convention: exit 0, 1, 2 are ok, warning, critical; anything else
    (3, a signal, a code no plugin should use) is unknown."""
    if code is not None and 0 <= code <= 2:
        return STATUSES[code]
    return "unknown"


def split_plugin_line(line: str) -> tuple[str, str]:
    """A plugin's first output line: the summary, and the performance data after ``|``."""
    summary, _, perfdata = line.partition("|")
    return summary.strip(), perfdata.strip()


def worst(statuses: list[str]) -> str:
    """The worst status of several; ``ok`` for none."""
    return max(statuses, key=lambda s: SEVERITY.get(s, 1), default="ok")
