"""The store's tables, declared as SQLAlchemy Core ``Table``s: the data. Store functions in
``core/store`` change them.

Core, not ORM classes: every query is a Core statement, and importing an ORM layer (it was
sqlmodel, with pydantic under it) was half the start-up of every command that reads the store.

Timestamps are aware UTC in Python and UTC in the store (portable across SQLite and
PostgreSQL). Secret parameter values
never sit in ``params``: they live Fernet-encrypted in ``secret_blob`` until the job is final.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import types


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


metadata = sa.MetaData()
"""Every table of the store: what ``create_all`` builds and the schema tests compare."""

_RUNNING_KEY_WHERE = "state = 'running' AND concurrency_limit = 1 AND concurrency_key IS NOT NULL"


jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("template", sa.String(64), nullable=False),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("priority", sa.Integer(), nullable=False, default=5),
    sa.Column("params", sa.JSON(), nullable=False, default=dict),
    sa.Column("secret_blob", sa.Text(), nullable=True),
    sa.Column("spec", sa.JSON(), nullable=False, default=dict),
    sa.Column("run_at", UtcDateTime(), nullable=False),
    sa.Column("depends_on", sa.JSON(), nullable=False, default=list),
    sa.Column("tags", sa.String(), nullable=False, default=""),
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    # Attempts made before the latest manual retry: automatic retries count from here.
    sa.Column("retry_base", sa.Integer(), nullable=False, default=0),
    sa.Column("max_retries", sa.Integer(), nullable=False, default=0),
    sa.Column("backoff_s", sa.Float(), nullable=False, default=5.0),
    sa.Column("timeout_s", sa.Float(), nullable=True),
    sa.Column("concurrency_key", sa.String(255), nullable=True),
    sa.Column("concurrency_limit", sa.Integer(), nullable=False, default=1),
    sa.Column("on_interrupt", sa.String(), nullable=False, default="mark"),
    sa.Column("dry_run", sa.Boolean(), nullable=False, default=False),
    sa.Column("submitted_by", sa.String(), nullable=False, default=""),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=True),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Column("exit_code", sa.Integer(), nullable=True),
    sa.Column("progress", sa.Integer(), nullable=True),
    sa.Column("step", sa.String(), nullable=True),
    sa.Column("result", sa.JSON(), nullable=True),
    sa.Column("error", sa.JSON(), nullable=True),
    sa.Column("worker", sa.String(128), nullable=True),
    sa.Column("lease_until", UtcDateTime(), nullable=True),
    sa.Column("cancel_requested", sa.Boolean(), nullable=False, default=False),
    sa.Column("cancel_reason", sa.String(), nullable=True),
    sa.Column("pid", sa.Integer(), nullable=True),
    sa.Column("log_lines", sa.Integer(), nullable=False, default=0),
    sa.Column("log_dropped", sa.Integer(), nullable=False, default=0),
    # Times a worker vanished while this job ran; past the cap the job ends failed.
    sa.Column("interruptions", sa.Integer(), nullable=False, default=0, server_default="0"),
    # The team that owns the job's template (copied at submit).
    sa.Column("team", sa.String(64), nullable=True),
    # How many times the job entered ``awaiting_approval``: approvals count per round.
    sa.Column("gate_round", sa.Integer(), nullable=False, default=0, server_default="0"),
    sa.Column("approval_expires_at", UtcDateTime(), nullable=True),
    # The digest the approvers approved when the gate opened; the worker checks it.
    sa.Column("approved_digest", sa.String(64), nullable=True),
    sa.Column("break_glass", sa.Boolean(), nullable=False, default=False, server_default="0"),
    # Terraform: ``plan`` until its plan is approved, then ``apply``; None for other runners.
    sa.Column("phase", sa.String(8), nullable=True),
    # The schedule whose fire submitted this job (None: submitted by hand).
    sa.Column("schedule", sa.String(64), nullable=True),
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
    sa.Index("ix_jobs_template_finished", "template", "finished_at", "id", "state", "started_at"),
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


deps = sa.Table(
    "job_deps",
    metadata,
    sa.Column("job_id", sa.String(16), primary_key=True),
    sa.Column("depends_on", sa.String(16), primary_key=True, index=True),
)


# The audit trail of every job and the change feed both faces follow by ``id``.
events = sa.Table(
    "job_events",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("job_id", sa.String(16), nullable=False, index=True),
    sa.Column("ts", UtcDateTime(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(), nullable=False, default=""),
    sa.Column("state", sa.String(), nullable=True),
    sa.Column("attempt", sa.Integer(), nullable=True),
    sa.Column("message", sa.String(), nullable=False, default=""),
    sa.Column("data", sa.JSON(), nullable=True),
    # ``opsconsole audit --actor/--action/--since`` walk these, newest first
    sa.Index("ix_job_events_actor", "actor", "id"),
    sa.Index("ix_job_events_kind", "kind", "id"),
    sa.Index("ix_job_events_ts", "ts"),
)


# Log lines, numbered per job from 1; ``stream`` is out, err or meta (our own notes).
logs = sa.Table(
    "job_logs",
    metadata,
    sa.Column("job_id", sa.String(16), primary_key=True),
    sa.Column("seq", sa.Integer(), primary_key=True),
    sa.Column("ts", UtcDateTime(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False, default=0),
    sa.Column("stream", sa.String(8), nullable=False, default="out"),
    sa.Column("line", sa.Text(), nullable=False),
)


workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer(), nullable=False),
    sa.Column("slots", sa.Integer(), nullable=False),
    sa.Column("desired_slots", sa.Integer(), nullable=False),
    sa.Column("busy", sa.Integer(), nullable=False, default=0),
    sa.Column("state", sa.String(16), nullable=False, default="running"),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
    sa.Column("version", sa.String(), nullable=False, default=""),
    # Why this pool cannot work as it should (None when healthy); said by its heartbeat.
    sa.Column("problem", sa.Text(), nullable=True),
    # How this worker makes sure nothing of a job survives it: ``cgroup`` or ``pgroup``.
    sa.Column("supervision", sa.String(32), nullable=True),
    # The machine this worker runs on, stable across container hostnames (machine id or
    # boot id, and the hostname): the reaper only kills process groups on its own machine.
    sa.Column("host_id", sa.String(128), nullable=True),
    sa.Index("ix_workers_host_id", "host_id", "state"),
)


# Facts about the store itself, e.g. the fingerprint of the key that seals secrets.
meta = sa.Table(
    "store_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)


# One decision on one round of a gated job: approve, reject, expire, void, break_glass.
approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("job_id", sa.String(16), nullable=False),
    sa.Column("round", sa.Integer(), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("comment", sa.Text(), nullable=False, default=""),
    sa.Column("digest", sa.String(64), nullable=True),
    sa.Column("at", UtcDateTime(), nullable=False),
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


# A break-glass run another person must acknowledge.
reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("job_id", sa.String(16), nullable=False, index=True),
    sa.Column("broken_by", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("acked_by", sa.String(128), nullable=True),
    sa.Column("acked_at", UtcDateTime(), nullable=True),
    sa.Column("comment", sa.Text(), nullable=True),
)


# A stop on new claims of matching jobs (scope all, tag, team or concurrency key).
freezes = sa.Table(
    "freezes",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("scope", sa.String(8), nullable=False),
    sa.Column("value", sa.String(255), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("until", UtcDateTime(), nullable=True),
    sa.Column("lifted_by", sa.String(128), nullable=True),
    sa.Column("lifted_at", UtcDateTime(), nullable=True),
    # every claim asks for the active freezes: lifted ones, which pile up, stay out of it
    sa.Index("ix_freezes_active", "lifted_at"),
)


# One host's result for one task of an Ansible attempt: a cell of the hosts grid.
#
# Written by the Ansible runner as the event stream arrives (``running`` when a task starts
# on a host, then its result), read by ``jobs hosts`` and the console's grid.
host_tasks = sa.Table(
    "host_tasks",
    metadata,
    sa.Column("job_id", sa.String(16), primary_key=True),
    sa.Column("attempt", sa.Integer(), primary_key=True),
    # The task's position in the run (0, 1, ...): the grid's column order.
    sa.Column("seq", sa.Integer(), primary_key=True),
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("play", sa.Text(), nullable=False, default=""),
    sa.Column("task", sa.Text(), nullable=False, default=""),
    # running | ok | changed | failed | unreachable | skipped | ignored
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("msg", sa.Text(), nullable=False, default=""),
    sa.Column("started_at", UtcDateTime(), nullable=True),
    sa.Column("ended_at", UtcDateTime(), nullable=True),
)


# One Terraform instance: a template's module applied under one name, with its own state.
#
# Where the state itself lives is the instance workspace's business (``core/instances.py``):
# this row is what the faces list, and what the last apply left.
instances = sa.Table(
    "instances",
    metadata,
    sa.Column("template", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    # new | applying | applied | destroying | destroyed | errored
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("last_job", sa.String(16), nullable=True),
    # Terraform's state serial after the last apply.
    sa.Column("serial", sa.Integer(), nullable=True),
    # The sha256 of the last plan applied to it.
    sa.Column("plan_hash", sa.String(64), nullable=True),
    # Output values, sensitive ones already masked.
    sa.Column("outputs", sa.JSON(), nullable=True),
    # Resource addresses in its state.
    sa.Column("resources", sa.JSON(), nullable=True),
    # Why it may not be applied now (an ``errored.tfstate`` to resolve), or None.
    sa.Column("problem", sa.Text(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)


# A saved Terraform plan of one job: what an approver sees and what the apply runs.
plans = sa.Table(
    "plans",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("job_id", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    # The job's approval round the plan was shown in.
    sa.Column("round", sa.Integer(), nullable=False),
    sa.Column("template", sa.String(64), nullable=False),
    sa.Column("instance", sa.String(128), nullable=False),
    # sha256 of the saved plan file: part of the approval digest.
    sa.Column("hash", sa.String(64), nullable=False),
    # add/change/destroy counts and the resource changes (from ``terraform show -json``).
    sa.Column("summary", sa.JSON(), nullable=False, default=dict),
    sa.Column("file", sa.Text(), nullable=False),
    # The saved plan file, sealed with the store's secret key, so any host can apply it.
    sa.Column("content", sa.LargeBinary(), nullable=True),
    # pending | applied | stale | discarded | failed
    sa.Column("status", sa.String(16), nullable=False, default="pending"),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("decided_at", UtcDateTime(), nullable=True),
    sa.Index("ix_plans_job", "job_id", "id"),
)


# Recurring work: a template and its parameters, fired by a cron or an interval.
#
# ``next_fire_at`` is the ledger's cursor: every fire time before it has a row in
# ``schedule_fires`` (fired, missed or skipped). A tick moves it forward with a guarded
# UPDATE in the same transaction as the fire rows and the job, so two processes ticking
# at once cannot both fire one time.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("template", sa.String(64), nullable=False),
    # Public parameter values (a secret one is sealed in ``secret_blob``).
    sa.Column("params", sa.JSON(), nullable=False, default=dict),
    sa.Column("secret_blob", sa.Text(), nullable=True),
    # A crontab expression (crontab's meaning, see ``core/cron.py``), or None.
    sa.Column("cron", sa.String(128), nullable=True),
    # The IANA zone a cron expression's wall-clock times are in.
    sa.Column("tz", sa.String(64), nullable=False, default="UTC"),
    # An interval in seconds instead of a cron expression.
    sa.Column("every_s", sa.Float(), nullable=True),
    sa.Column("jitter_s", sa.Float(), nullable=False, default=0.0),
    # latest | all | skip: what a tick does with fire times it finds already past.
    sa.Column("catchup", sa.String(8), nullable=False, default="latest"),
    # skip | queue | allow: what a fire does while the previous fire's job is live.
    sa.Column("overlap", sa.String(8), nullable=False, default="skip"),
    sa.Column("paused", sa.Boolean(), nullable=False, default=False),
    # cli (added by an operator) | template (declared by a template's ``schedule:`` block).
    sa.Column("origin", sa.String(16), nullable=False, default="cli"),
    sa.Column("next_fire_at", UtcDateTime(), nullable=True),
    sa.Column("last_fire_at", UtcDateTime(), nullable=True),
    sa.Column("last_job", sa.String(16), nullable=True),
    sa.Column("created_by", sa.String(128), nullable=False, default=""),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # a tick asks for the schedules that are due, and only those
    sa.Index("ix_schedules_due", "paused", "next_fire_at"),
)


# The ledger: one row per fire time of a schedule, and what became of it.
#
# The primary key (schedule, fire_at) is what makes a fire happen once across processes:
# the row is inserted in the same transaction as the job it fired.
schedule_fires = sa.Table(
    "schedule_fires",
    metadata,
    sa.Column("schedule", sa.String(64), primary_key=True),
    sa.Column("fire_at", UtcDateTime(), primary_key=True),
    # fired | missed | skipped
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("job_id", sa.String(16), nullable=True),
    # Why a fire was missed or skipped (and for a fired one: ``run`` by hand, a catch-up).
    sa.Column("reason", sa.Text(), nullable=False, default=""),
    sa.Column("actor", sa.String(128), nullable=False, default=""),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
)


# A recurring check's current status: what ``checks list`` and the Checks view show.
checks = sa.Table(
    "checks",
    metadata,
    # The schedule's name (or the template's, for a check run by hand).
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("template", sa.String(64), nullable=False),
    # ok | warning | critical | unknown
    sa.Column("status", sa.String(8), nullable=False),
    # When the check entered this status.
    sa.Column("since", UtcDateTime(), nullable=False),
    # The last result's one-line summary (Nagios plugin style).
    sa.Column("output", sa.Text(), nullable=False, default=""),
    sa.Column("latency_ms", sa.Float(), nullable=True),
    sa.Column("last_job", sa.String(16), nullable=True),
    sa.Column("last_at", UtcDateTime(), nullable=False),
)


# One result of a check: the sparkline of recent statuses and latencies.
check_results = sa.Table(
    "check_results",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("check", sa.String(64), nullable=False),
    sa.Column("job_id", sa.String(16), nullable=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("latency_ms", sa.Float(), nullable=True),
    sa.Column("output", sa.Text(), nullable=False, default=""),
    sa.Index("ix_check_results_check", "check", "id"),
)


# What the store knows of a webhook declared in opsconsole.toml: its feed cursor and
# its failures (the declaration itself, URL and secret reference, stays in the file).
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    # The id of the last event matched against this webhook.
    sa.Column("cursor", sa.Integer(), nullable=False, default=0),
    # Deliveries failed in a row; at 5 the webhook disables itself.
    sa.Column("failures", sa.Integer(), nullable=False, default=0),
    sa.Column("disabled_at", UtcDateTime(), nullable=True),
    sa.Column("disabled_reason", sa.Text(), nullable=True),
    sa.Column("last_delivery_at", UtcDateTime(), nullable=True),
    sa.Column("last_status", sa.Text(), nullable=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)
