"""Frozen read models for the faces, with secrets already masked.

``JobView.to_dict`` is the documented ``--json`` shape: keys in a stable order, timestamps
ISO 8601 UTC. Scripts parse it, so keys are only ever added, never renamed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from opsconsole.core.catalog import priority_name
from opsconsole.core.states import JobState, can_cancel, can_retry


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _runner(spec: Any) -> str:
    runner = spec.get("runner") if isinstance(spec, Mapping) else None
    return runner if isinstance(runner, str) else "shell"


@dataclass(frozen=True)
class EventView:
    id: int
    job_id: str
    ts: datetime
    kind: str
    actor: str
    state: str | None
    attempt: int | None
    message: str
    data: dict[str, Any] | None

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> EventView:
        return cls(
            id=r["id"],
            job_id=r["job_id"],
            ts=r["ts"],
            kind=r["kind"],
            actor=r["actor"],
            state=r["state"],
            attempt=r["attempt"],
            message=r["message"],
            data=r["data"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job": self.job_id,
            "ts": iso(self.ts),
            "kind": self.kind,
            "actor": self.actor,
            "state": self.state,
            "attempt": self.attempt,
            "message": self.message,
            "data": self.data,
        }


@dataclass(frozen=True)
class LogLine:
    seq: int
    ts: datetime
    attempt: int
    stream: str
    text: str

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> LogLine:
        return cls(
            seq=r["seq"], ts=r["ts"], attempt=r["attempt"], stream=r["stream"], text=r["line"]
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": iso(self.ts),
            "attempt": self.attempt,
            "stream": self.stream,
            "text": self.text,
        }


@dataclass(frozen=True)
class JobView:
    id: str
    template: str
    state: JobState
    priority: int
    params: dict[str, Any]
    attempts: int
    max_retries: int
    run_at: datetime
    depends_on: list[str]
    tags: list[str]
    dry_run: bool
    submitted_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    progress: int | None
    step: str | None
    result: Any
    error: dict[str, Any] | None
    worker: str | None
    timeout_s: float | None
    concurrency_key: str | None
    cancel_requested: bool
    log_lines: int
    log_dropped: int
    events: tuple[EventView, ...] | None = None
    team: str | None = None
    frozen: str | None = None
    """Why this ready job is not claimed: ``frozen: REASON (until ...)``; None when free."""
    break_glass: bool = False
    """It ran past its approval gate by break-glass (a review follows it)."""
    runner: str = "shell"
    """What its template snapshot runs (``ansible`` jobs have a hosts grid)."""

    @property
    def can_cancel(self) -> bool:
        return can_cancel(self.state) and not self.cancel_requested

    @property
    def can_retry(self) -> bool:
        return can_retry(self.state)

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at
        if end is None:
            return None
        return round((end - self.started_at).total_seconds(), 3)

    @classmethod
    def from_row(
        cls,
        r: Mapping[str, Any],
        *,
        depends_on: list[str] | None = None,
        events: tuple[EventView, ...] | None = None,
    ) -> JobView:
        return cls(
            id=r["id"],
            template=r["template"],
            state=JobState(r["state"]),
            priority=r["priority"],
            params=dict(r["params"] or {}),
            attempts=r["attempts"],
            max_retries=r["max_retries"],
            run_at=r["run_at"],
            depends_on=list(depends_on if depends_on is not None else r["depends_on"] or []),
            tags=[t for t in (r["tags"] or "").split(",") if t],
            dry_run=bool(r["dry_run"]),
            submitted_by=r["submitted_by"],
            created_at=r["created_at"],
            started_at=r["started_at"],
            finished_at=r["finished_at"],
            exit_code=r["exit_code"],
            progress=r["progress"],
            step=r["step"],
            result=r["result"],
            error=r["error"],
            worker=r["worker"],
            timeout_s=r["timeout_s"],
            concurrency_key=r["concurrency_key"],
            cancel_requested=bool(r["cancel_requested"]),
            log_lines=r["log_lines"],
            log_dropped=r["log_dropped"],
            events=events,
            team=r.get("team"),
            break_glass=bool(r.get("break_glass")),
            runner=_runner(r.get("spec")),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "template": self.template,
            "state": self.state.value,
            "priority": self.priority,
            "params": self.params,
            "attempts": self.attempts,
            "max_retries": self.max_retries,
            "run_at": iso(self.run_at),
            "depends_on": self.depends_on,
            "tags": self.tags,
            "dry_run": self.dry_run,
            "submitted_by": self.submitted_by,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "exit_code": self.exit_code,
            "progress": self.progress,
            "step": self.step,
            "result": self.result,
            "error": self.error,
            "worker": self.worker,
            "can_cancel": self.can_cancel,
            "can_retry": self.can_retry,
            "priority_name": priority_name(self.priority),
            "timeout_s": self.timeout_s,
            "concurrency_key": self.concurrency_key,
            "cancel_requested": self.cancel_requested,
            "duration_s": self.duration_s,
            "log_lines": self.log_lines,
            "log_dropped": self.log_dropped,
            "team": self.team,
            "frozen": self.frozen,
            "break_glass": self.break_glass,
        }
        if self.events is not None:
            out["events"] = [e.to_dict() for e in self.events]
        return out


@dataclass(frozen=True)
class Page:
    jobs: list[JobView]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobs": [j.to_dict() for j in self.jobs],
            "total": self.total,
            "page": self.page,
            "page_size": self.page_size,
            "pages": self.pages,
        }


@dataclass(frozen=True)
class ParamView:
    name: str
    type: str
    required: bool
    default: Any
    secret: bool
    description: str
    choices: list[str]
    pattern: str | None
    min: float | None
    max: float | None


@dataclass(frozen=True)
class TemplateView:
    name: str
    description: str
    runner: str
    params: list[ParamView]
    priority: int
    timeout_s: float | None
    retries: int
    backoff_s: float
    concurrency_key: str | None
    concurrency_limit: int
    on_interrupt: str
    tags: list[str]
    source: str
    command: list[str] | None
    handler: str | None
    runs: str = ""
    """What it runs, in one line: the command, handler, playbook, module or Terraform module."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["priority_name"] = priority_name(self.priority)
        return d


@dataclass(frozen=True)
class WorkerView:
    id: str
    host: str
    pid: int
    slots: int
    desired_slots: int
    busy: int
    state: str
    started_at: datetime
    heartbeat_at: datetime
    alive: bool
    version: str
    problem: str | None = None
    """Why this pool cannot work as it should (None when healthy), or how it vanished."""
    supervision: str | None = None
    """How it makes sure nothing of a job survives it: ``cgroup`` or ``pgroup``."""
    host_id: str | None = None
    """The machine it runs on (``core/hostid.py``): two hosts that share a hostname differ
    here, and the reaper judges a worker dead on this machine by it. None for a row written
    before it was recorded."""

    @property
    def healthy(self) -> bool:
        return self.alive and not self.problem

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["healthy"] = self.healthy
        d["started_at"] = iso(self.started_at)
        d["heartbeat_at"] = iso(self.heartbeat_at)
        return d


@dataclass(frozen=True)
class LockHolder:
    job: str
    template: str
    worker: str | None
    since: datetime | None


@dataclass(frozen=True)
class LockView:
    key: str
    limit: int
    holders: list[LockHolder]
    waiting: list[str]
    """Job ids in the order they will get the key."""
    since: datetime | None
    """When the current holders took it (the earliest start)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "limit": self.limit,
            "holders": [
                {"job": h.job, "template": h.template, "worker": h.worker, "since": iso(h.since)}
                for h in self.holders
            ],
            "waiting": self.waiting,
            "since": iso(self.since),
        }


@dataclass(frozen=True)
class TemplateStatsView:
    template: str
    runs: int
    succeeded: int
    partial: int
    """Runs that ended partial: counted apart, neither a success nor a failure."""
    failed: int
    """Runs that ended in any other final state (failed, timed out, cancelled, ...)."""
    success_rate: float | None
    p50_s: float | None
    p95_s: float | None
    recent: list[str]


@dataclass(frozen=True)
class StatsView:
    since: datetime | None
    counts: dict[str, int]
    templates: list[TemplateStatsView]

    @property
    def success_rate(self) -> float | None:
        runs = sum(t.runs for t in self.templates)
        return round(sum(t.succeeded for t in self.templates) / runs, 4) if runs else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": iso(self.since),
            "counts": self.counts,
            "success_rate": self.success_rate,
            "templates": [asdict(t) for t in self.templates],
        }


@dataclass(frozen=True)
class HealthCheck:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class HealthView:
    checks: list[HealthCheck] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "checks": [asdict(c) for c in self.checks]}
