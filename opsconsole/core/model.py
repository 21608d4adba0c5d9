"""SQLModel tables: the data. Store functions in ``core/store`` change them.

Timestamps are aware UTC in Python and UTC in the store (portable across SQLite and
PostgreSQL). Secret parameter values
never sit in ``params``: they live Fernet-encrypted in ``secret_blob`` until the job is final.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import types
from sqlmodel import Field, SQLModel


class UtcDateTime(types.TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, whatever the backend stores."""

    impl = types.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


def _ts(nullable: bool = False) -> Any:
    return (
        Field(default=None, sa_type=UtcDateTime, nullable=nullable)
        if nullable
        else Field(sa_type=UtcDateTime)
    )


_RUNNING_KEY_WHERE = "state = 'running' AND concurrency_limit = 1 AND concurrency_key IS NOT NULL"


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        # claim: ready jobs by state, then priority and age
        sa.Index("ix_jobs_claim", "state", "priority", "created_at"),
        sa.Index("ix_jobs_lock", "concurrency_key", "state"),
        sa.Index("ix_jobs_worker", "worker", "state"),
        # History: finished jobs newest first, keyset-paged on (finished_at, id)
        sa.Index("ix_jobs_history", "finished_at", "id"),
        # jobs list: newest first, keyset on (created_at, id); by template
        sa.Index("ix_jobs_created", "created_at", "id"),
        sa.Index("ix_jobs_template", "template", "created_at", "id"),
        # one template's History; stats per template in a finish-time window, index-only
        sa.Index(
            "ix_jobs_template_finished", "template", "finished_at", "id", "state", "started_at"
        ),
        # stats without --since: a template's runs per final state, counted as index ranges
        sa.Index("ix_jobs_template_state", "template", "state", "started_at"),
        # (not declared here: ix_jobs_durations on (template, <run seconds>, state,
        # started_at, finished_at), an expression index written per dialect by migration
        # 0008; the percentiles of ``stats`` walk it; reflection cannot compare it)
        # a schedule's overlap policy asks for its live jobs; its view for its last ones
        sa.Index("ix_jobs_schedule", "schedule", "created_at"),
        # a limit-1 key has at most one running job, enforced by the database itself:
        # overlapping claims on PostgreSQL each read their own snapshot
        sa.Index(
            "ux_jobs_running_key",
            "concurrency_key",
            unique=True,
            sqlite_where=sa.text(_RUNNING_KEY_WHERE),
            postgresql_where=sa.text(_RUNNING_KEY_WHERE),
        ),
    )

    id: str = Field(primary_key=True, max_length=16)
    template: str = Field(max_length=64)
    state: str = Field(max_length=24)
    priority: int = 5
    params: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    secret_blob: str | None = Field(default=None, sa_type=sa.Text)
    spec: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    run_at: datetime = _ts()
    depends_on: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    tags: str = ""
    attempts: int = 0
    retry_base: int = 0
    """Attempts made before the latest manual retry: automatic retries count from here."""
    max_retries: int = 0
    backoff_s: float = 5.0
    timeout_s: float | None = None
    concurrency_key: str | None = Field(default=None, max_length=255)
    concurrency_limit: int = 1
    on_interrupt: str = "mark"
    dry_run: bool = False
    submitted_by: str = ""
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    started_at: datetime | None = _ts(nullable=True)
    finished_at: datetime | None = _ts(nullable=True)
    exit_code: int | None = None
    progress: int | None = None
    step: str | None = None
    result: Any | None = Field(default=None, sa_type=sa.JSON)
    error: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    worker: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = _ts(nullable=True)
    cancel_requested: bool = False
    cancel_reason: str | None = None
    pid: int | None = None
    log_lines: int = 0
    log_dropped: int = 0
    interruptions: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """Times a worker vanished while this job ran; past the cap the job ends failed."""
    team: str | None = Field(default=None, max_length=64)
    """The team that owns the job's template (copied at submit)."""
    gate_round: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """How many times the job entered ``awaiting_approval``: approvals count per round."""
    approval_expires_at: datetime | None = _ts(nullable=True)
    approved_digest: str | None = Field(default=None, max_length=64)
    """The digest the approvers approved when the gate opened; the worker checks it."""
    break_glass: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    phase: str | None = Field(default=None, max_length=8)
    """Terraform: ``plan`` until its plan is approved, then ``apply``; None for other runners."""
    schedule: str | None = Field(default=None, max_length=64)
    """The schedule whose fire submitted this job (None: submitted by hand)."""


class JobDependency(SQLModel, table=True):
    __tablename__ = "job_deps"

    job_id: str = Field(primary_key=True, max_length=16)
    depends_on: str = Field(primary_key=True, max_length=16, index=True)


class JobEvent(SQLModel, table=True):
    """The audit trail of every job and the change feed both faces follow by ``id``."""

    __tablename__ = "job_events"
    __table_args__ = (
        # ``opsconsole audit --actor/--action/--since`` walk these, newest first
        sa.Index("ix_job_events_actor", "actor", "id"),
        sa.Index("ix_job_events_kind", "kind", "id"),
        sa.Index("ix_job_events_ts", "ts"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=16, index=True)
    ts: datetime = _ts()
    kind: str = Field(max_length=32)
    actor: str = ""
    state: str | None = None
    attempt: int | None = None
    message: str = ""
    data: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)


class JobLog(SQLModel, table=True):
    """Log lines, numbered per job from 1; ``stream`` is out, err or meta (our own notes)."""

    __tablename__ = "job_logs"

    job_id: str = Field(primary_key=True, max_length=16)
    seq: int = Field(primary_key=True)
    ts: datetime = _ts()
    attempt: int = 0
    stream: str = Field(default="out", max_length=8)
    line: str = Field(sa_type=sa.Text)


class Worker(SQLModel, table=True):
    __tablename__ = "workers"
    __table_args__ = (sa.Index("ix_workers_host_id", "host_id", "state"),)

    id: str = Field(primary_key=True, max_length=128)
    host: str = Field(max_length=255)
    pid: int
    slots: int
    desired_slots: int
    busy: int = 0
    state: str = Field(default="running", max_length=16)
    started_at: datetime = _ts()
    heartbeat_at: datetime = _ts()
    version: str = ""
    problem: str | None = Field(default=None, sa_type=sa.Text)
    """Why this pool cannot work as it should (None when healthy); said by its heartbeat."""
    supervision: str | None = Field(default=None, max_length=32)
    """How this worker makes sure nothing of a job survives it: ``cgroup`` or ``pgroup``."""
    host_id: str | None = Field(default=None, max_length=128)
    """The machine this worker runs on, stable across container hostnames (machine id or
    boot id, and the hostname): the reaper only kills process groups on its own machine."""


class StoreMeta(SQLModel, table=True):
    """Facts about the store itself, e.g. the fingerprint of the key that seals secrets."""

    __tablename__ = "store_meta"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_type=sa.Text)


class Approval(SQLModel, table=True):
    """One decision on one round of a gated job: approve, reject, expire, void, break_glass."""

    __tablename__ = "approvals"
    __table_args__ = (
        sa.Index("ix_approvals_job", "job_id", "round"),
        # one approval per person per round, enforced by the store itself
        sa.Index(
            "uq_approvals_approver",
            "job_id",
            "round",
            "actor",
            unique=True,
            sqlite_where=sa.text("decision = 'approve'"),
            postgresql_where=sa.text("decision = 'approve'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=16)
    round: int
    actor: str = Field(max_length=128)
    decision: str = Field(max_length=16)
    comment: str = Field(default="", sa_type=sa.Text)
    digest: str | None = Field(default=None, max_length=64)
    at: datetime = _ts()


class Review(SQLModel, table=True):
    """A break-glass run another person must acknowledge."""

    __tablename__ = "reviews"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=16, index=True)
    broken_by: str = Field(max_length=128)
    reason: str = Field(sa_type=sa.Text)
    created_at: datetime = _ts()
    acked_by: str | None = Field(default=None, max_length=128)
    acked_at: datetime | None = _ts(nullable=True)
    comment: str | None = Field(default=None, sa_type=sa.Text)


class Freeze(SQLModel, table=True):
    """A stop on new claims of matching jobs (scope all, tag, team or concurrency key)."""

    __tablename__ = "freezes"
    __table_args__ = (
        # every claim asks for the active freezes: lifted ones, which pile up, stay out of it
        sa.Index("ix_freezes_active", "lifted_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=8)
    value: str | None = Field(default=None, max_length=255)
    reason: str = Field(sa_type=sa.Text)
    created_by: str = Field(max_length=128)
    created_at: datetime = _ts()
    until: datetime | None = _ts(nullable=True)
    lifted_by: str | None = Field(default=None, max_length=128)
    lifted_at: datetime | None = _ts(nullable=True)


class HostTask(SQLModel, table=True):
    """One host's result for one task of an Ansible attempt: a cell of the hosts grid.

    Written by the Ansible runner as the event stream arrives (``running`` when a task starts
    on a host, then its result), read by ``jobs hosts`` and the console's grid.
    """

    __tablename__ = "host_tasks"

    job_id: str = Field(primary_key=True, max_length=16)
    attempt: int = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    """The task's position in the run (0, 1, ...): the grid's column order."""
    host: str = Field(primary_key=True, max_length=255)
    play: str = Field(default="", sa_type=sa.Text)
    task: str = Field(default="", sa_type=sa.Text)
    status: str = Field(max_length=16)
    """running | ok | changed | failed | unreachable | skipped | ignored"""
    msg: str = Field(default="", sa_type=sa.Text)
    started_at: datetime | None = _ts(nullable=True)
    ended_at: datetime | None = _ts(nullable=True)


class Instance(SQLModel, table=True):
    """One Terraform instance: a template's module applied under one name, with its own state.

    Where the state itself lives is the instance workspace's business (``core/instances.py``):
    this row is what the faces list, and what the last apply left.
    """

    __tablename__ = "instances"

    template: str = Field(primary_key=True, max_length=64)
    name: str = Field(primary_key=True, max_length=128)
    status: str = Field(max_length=16)
    """new | applying | applied | destroying | destroyed | errored"""
    last_job: str | None = Field(default=None, max_length=16)
    serial: int | None = None
    """Terraform's state serial after the last apply."""
    plan_hash: str | None = Field(default=None, max_length=64)
    """The sha256 of the last plan applied to it."""
    outputs: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    """Output values, sensitive ones already masked."""
    resources: list[str] | None = Field(default=None, sa_type=sa.JSON)
    """Resource addresses in its state."""
    problem: str | None = Field(default=None, sa_type=sa.Text)
    """Why it may not be applied now (an ``errored.tfstate`` to resolve), or None."""
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Plan(SQLModel, table=True):
    """A saved Terraform plan of one job: what an approver sees and what the apply runs."""

    __tablename__ = "plans"
    __table_args__ = (sa.Index("ix_plans_job", "job_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=16)
    attempt: int
    round: int
    """The job's approval round the plan was shown in."""
    template: str = Field(max_length=64)
    instance: str = Field(max_length=128)
    hash: str = Field(max_length=64)
    """sha256 of the saved plan file: part of the approval digest."""
    summary: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    """add/change/destroy counts and the resource changes (from ``terraform show -json``)."""
    file: str = Field(sa_type=sa.Text)
    content: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    """The saved plan file, sealed with the store's secret key, so any host can apply it."""
    status: str = Field(default="pending", max_length=16)
    """pending | applied | stale | discarded | failed"""
    created_at: datetime = _ts()
    decided_at: datetime | None = _ts(nullable=True)


class Schedule(SQLModel, table=True):
    """Recurring work: a template and its parameters, fired by a cron or an interval.

    ``next_fire_at`` is the ledger's cursor: every fire time before it has a row in
    ``schedule_fires`` (fired, missed or skipped). A tick moves it forward with a guarded
    UPDATE in the same transaction as the fire rows and the job, so two processes ticking
    at once cannot both fire one time.
    """

    __tablename__ = "schedules"
    __table_args__ = (
        # a tick asks for the schedules that are due, and only those
        sa.Index("ix_schedules_due", "paused", "next_fire_at"),
    )

    name: str = Field(primary_key=True, max_length=64)
    template: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    """Public parameter values (a secret one is sealed in ``secret_blob``)."""
    secret_blob: str | None = Field(default=None, sa_type=sa.Text)
    cron: str | None = Field(default=None, max_length=128)
    """A crontab expression (crontab's meaning, see ``core/cron.py``), or None."""
    tz: str = Field(default="UTC", max_length=64)
    """The IANA zone a cron expression's wall-clock times are in."""
    every_s: float | None = None
    """An interval in seconds instead of a cron expression."""
    jitter_s: float = 0.0
    catchup: str = Field(default="latest", max_length=8)
    """latest | all | skip: what a tick does with fire times it finds already past."""
    overlap: str = Field(default="skip", max_length=8)
    """skip | queue | allow: what a fire does while the previous fire's job is live."""
    paused: bool = False
    origin: str = Field(default="cli", max_length=16)
    """cli (added by an operator) | template (declared by a template's ``schedule:`` block)."""
    next_fire_at: datetime | None = _ts(nullable=True)
    last_fire_at: datetime | None = _ts(nullable=True)
    last_job: str | None = Field(default=None, max_length=16)
    created_by: str = Field(default="", max_length=128)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class ScheduleFire(SQLModel, table=True):
    """The ledger: one row per fire time of a schedule, and what became of it.

    The primary key (schedule, fire_at) is what makes a fire happen once across processes:
    the row is inserted in the same transaction as the job it fired.
    """

    __tablename__ = "schedule_fires"

    schedule: str = Field(primary_key=True, max_length=64)
    fire_at: datetime = Field(primary_key=True, sa_type=UtcDateTime)
    status: str = Field(max_length=8)
    """fired | missed | skipped"""
    job_id: str | None = Field(default=None, max_length=16)
    reason: str = Field(default="", sa_type=sa.Text)
    """Why a fire was missed or skipped (and for a fired one: ``run`` by hand, a catch-up)."""
    actor: str = Field(default="", max_length=128)
    recorded_at: datetime = _ts()


class Check(SQLModel, table=True):
    """A recurring check's current status: what ``checks list`` and the Checks view show."""

    __tablename__ = "checks"

    name: str = Field(primary_key=True, max_length=64)
    """The schedule's name (or the template's, for a check run by hand)."""
    template: str = Field(max_length=64)
    status: str = Field(max_length=8)
    """ok | warning | critical | unknown"""
    since: datetime = _ts()
    """When the check entered this status."""
    output: str = Field(default="", sa_type=sa.Text)
    """The last result's one-line summary (Nagios plugin style)."""
    latency_ms: float | None = None
    last_job: str | None = Field(default=None, max_length=16)
    last_at: datetime = _ts()


class CheckResult(SQLModel, table=True):
    """One result of a check: the sparkline of recent statuses and latencies."""

    __tablename__ = "check_results"
    __table_args__ = (sa.Index("ix_check_results_check", "check", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    check: str = Field(max_length=64)
    job_id: str | None = Field(default=None, max_length=16)
    at: datetime = _ts()
    status: str = Field(max_length=8)
    latency_ms: float | None = None
    output: str = Field(default="", sa_type=sa.Text)


class WebhookState(SQLModel, table=True):
    """What the store knows of a webhook declared in opsconsole.toml: its feed cursor and
    its failures (the declaration itself, URL and secret reference, stays in the file)."""

    __tablename__ = "webhooks"

    name: str = Field(primary_key=True, max_length=64)
    cursor: int = 0
    """The id of the last event matched against this webhook."""
    failures: int = 0
    """Deliveries failed in a row; at 5 the webhook disables itself."""
    disabled_at: datetime | None = _ts(nullable=True)
    disabled_reason: str | None = Field(default=None, sa_type=sa.Text)
    last_delivery_at: datetime | None = _ts(nullable=True)
    last_status: str | None = Field(default=None, sa_type=sa.Text)
    updated_at: datetime = _ts()
