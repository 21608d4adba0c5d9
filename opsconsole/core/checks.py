"""Recurring checks: a job whose outcome is a status (ok, warning, critical, unknown).
OpsService's mixin.

The faces read checks only through here: each check's current status and since when, its
last output, and its recent results for a sparkline. What makes a job a check and how its
status is found is in ``core/catalog/check.py`` and ``core/store/checks.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsconsole.core.catalog.check import worst
from opsconsole.core.errors import NotFound
from opsconsole.core.host import ServiceHost
from opsconsole.core.store import checks as check_store
from opsconsole.core.views import iso

RECENT = 30
"""Results a listing carries per check: a sparkline's width."""
DETAIL = 50
"""Results ``checks show`` lists."""


@dataclass(frozen=True)
class CheckResultView:
    """One result of a check."""

    job_id: str | None
    at: datetime
    status: str
    latency_ms: float | None
    output: str

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> CheckResultView:
        return cls(
            job_id=r["job_id"],
            at=r["at"],
            status=r["status"],
            latency_ms=r["latency_ms"],
            output=r["output"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job_id,
            "at": iso(self.at),
            "status": self.status,
            "latency_ms": self.latency_ms,
            "output": self.output,
        }


@dataclass(frozen=True)
class CheckView:
    """A check's current status; ``recent`` is its last results, oldest first."""

    name: str
    template: str
    status: str
    since: datetime
    output: str
    latency_ms: float | None
    last_job: str | None
    last_at: datetime
    recent: tuple[CheckResultView, ...] = ()

    @classmethod
    def from_row(cls, r: Mapping[str, Any], recent: list[Mapping[str, Any]]) -> CheckView:
        return cls(
            name=r["name"],
            template=r["template"],
            status=r["status"],
            since=r["since"],
            output=r["output"],
            latency_ms=r["latency_ms"],
            last_job=r["last_job"],
            last_at=r["last_at"],
            recent=tuple(CheckResultView.from_row(x) for x in recent),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "template": self.template,
            "status": self.status,
            "since": iso(self.since),
            "output": self.output,
            "latency_ms": self.latency_ms,
            "last_job": self.last_job,
            "last_at": iso(self.last_at),
            "recent": [x.status for x in self.recent],
        }


@dataclass(frozen=True)
class CheckDetail:
    """A check and its recent results, newest first."""

    view: CheckView
    results: list[CheckResultView]

    def to_dict(self) -> dict[str, Any]:
        return {**self.view.to_dict(), "results": [r.to_dict() for r in self.results]}


def overall(views: list[CheckView]) -> str:
    """The worst status of the checks (``ok`` when there are none)."""
    return worst([v.status for v in views])


class ChecksMixin(ServiceHost):
    """The checks' current statuses and their recent results."""

    def checks(self, *, recent: int = RECENT) -> list[CheckView]:
        """Every check by name, each with its last ``recent`` results for a sparkline."""
        rows = check_store.list_checks(self.db)
        names = [r["name"] for r in rows] if recent > 0 else []
        results = check_store.recent_results(self.db, names, recent)
        return [CheckView.from_row(r, results.get(r["name"], [])) for r in rows]

    def check(self, name: str, *, limit: int = DETAIL) -> CheckDetail:
        """One check and its last ``limit`` results, newest first; ``NotFound`` if it never ran."""
        row = check_store.get_check(self.db, name)
        if row is None:
            raise NotFound(f"no check '{name[:64]}' (a check appears when its first job ends)")
        results = check_store.recent_results(self.db, [name], max(limit, RECENT))[name]
        view = CheckView.from_row(row, results[-RECENT:])
        return CheckDetail(view, [CheckResultView.from_row(r) for r in results[::-1][:limit]])
