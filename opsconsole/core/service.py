"""OpsService: the ONE API both faces call. Every operator action is a method here.

It validates input, decides states, and calls the store; it never formats output and never
runs jobs. Errors are ``OpsError``s whose message is the one line a face shows.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opsconsole.config import Settings
from opsconsole.core import access, wake
from opsconsole.core.approvals import ApprovalsMixin, check_confirmation
from opsconsole.core.audit import AuditMixin
from opsconsole.core.bulk import BulkMixin
from opsconsole.core.catalog import (
    Catalog,
    Template,
    parse_duration,
    parse_priority,
    render,
    validate_params,
)
from opsconsole.core.checks import ChecksMixin
from opsconsole.core.clock import Clock, SystemClock
from opsconsole.core.db_roles import RolesMixin
from opsconsole.core.errors import (
    Conflict,
    Forbidden,
    InvalidParams,
    InvalidTransition,
    NotFound,
)
from opsconsole.core.files import access_for
from opsconsole.core.fire_plan import FireTimes
from opsconsole.core.freezes import FreezesMixin
from opsconsole.core.hosts import HostsMixin
from opsconsole.core.identity import Identity, current, user_name
from opsconsole.core.ids import new_job_id
from opsconsole.core.instance_ops import InstanceOpsMixin
from opsconsole.core.instances import concurrency_key, instance_name
from opsconsole.core.maintenance import MaintenanceMixin
from opsconsole.core.reports import ReportsMixin
from opsconsole.core.reviews import ReviewsMixin
from opsconsole.core.schedules import SchedulesMixin
from opsconsole.core.secrets import MASK, SecretBox, fingerprint, split_secrets
from opsconsole.core.states import FINAL, LIVE, JobState
from opsconsole.core.store import feed, notify, queries
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store import keys as key_store
from opsconsole.core.store.db import Database
from opsconsole.core.views import (
    EventView,
    JobView,
    LogLine,
    Page,
    WorkerView,
)
from opsconsole.core.webhooks import WebhooksMixin

S = JobState
MAX_TAGS = 20


MAX_DEPENDENCIES = 100


@dataclass(frozen=True)
class SubmitRequest:
    template: str
    params: Mapping[str, Any] = field(default_factory=dict)
    priority: str | int | None = None
    run_at: datetime | None = None
    run_in: str | None = None
    after: tuple[str, ...] = ()
    retries: int | None = None
    timeout: str | None = None
    tags: tuple[str, ...] = ()
    dry_run: bool = False
    confirm: str | None = None
    """What the operator typed for a template with ``confirm:`` (its rendered text)."""


@dataclass(frozen=True)
class ListRequest:
    states: tuple[str, ...] = ()
    template: str | None = None
    tag: str | None = None
    since: str | None = None
    """A duration back from now (``2h``, ``1d``)."""
    text: str | None = None
    team: str | None = None
    page: int = 1
    page_size: int = 50


class OpsService(
    InstanceOpsMixin,
    ApprovalsMixin,
    ReviewsMixin,
    FreezesMixin,
    BulkMixin,
    AuditMixin,
    ReportsMixin,
    HostsMixin,
    SchedulesMixin,
    ChecksMixin,
    WebhooksMixin,
    MaintenanceMixin,
    RolesMixin,
):
    """Built by ``runtime.open_service``; cheap to keep for the life of a process."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        catalog: Catalog | None = None,
        clock: Clock | None = None,
        fire_times: FireTimes | None = None,
    ) -> None:
        self.settings = settings
        self.fire_times = fire_times
        """When a cron schedule fires: APScheduler's, from the engine (``core/schedules.py``)."""
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self._catalog = catalog
        self._catalog_fixed = catalog is not None
        """A catalog given here (a test's) is never reloaded from disk."""
        self._catalog_stamp: tuple[object, ...] | None = None
        self._catalog_lock = threading.Lock()
        self._box: SecretBox | None = None
        self.identity: Identity = current()
        """Who acts through this service: the OS account of this process, asked once."""

    # -- plumbing -------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        """The catalog as first loaded by this service (``reload_catalog`` reads it again)."""
        if self._catalog is None:
            return self.reload_catalog()
        return self._catalog

    def reload_catalog(self) -> Catalog:
        root = Path(self.settings.catalog)
        with self._catalog_lock:
            stamp = Catalog.stamp(root)
            self._catalog = Catalog.load(root)
            self._catalog_stamp = stamp
            return self._catalog

    def current_catalog(self) -> Catalog:
        """The catalog as it is on disk now: loaded again only when its files changed.

        A long-lived process (a worker) asks this before each job, so a template file added
        or fixed since it started counts at once; a directory listing and a few ``stat`` calls
        make it cheap when nothing changed.
        """
        if self._catalog_fixed:
            return self.catalog
        root = Path(self.settings.catalog)
        if self._catalog is not None and Catalog.stamp(root) == self._catalog_stamp:
            return self._catalog
        return self.reload_catalog()

    def catalog_refusal(self, template: str) -> str | None:
        """Why jobs of ``template`` must not run now, or None.

        A job runs the template it was submitted with; but while two catalog files declare its
        name, the catalog does not say which one is meant, so no job of that name runs until
        the operator removes the ambiguity.
        """
        return self.current_catalog().ambiguity(template)

    @property
    def box(self) -> SecretBox:
        """The cipher of this store's secrets, with the key whose fingerprint the store holds."""
        if self._box is None:
            key, _ = key_store.store_key(self.db, self._key_source(), create=True)
            assert key is not None
            self._box = SecretBox(key)
        return self._box

    def key_status(self) -> str:
        """This host's key checked against the store's record, for ``health``; makes nothing.

        Raises StoreUnavailable (saying how to recover) when the key cannot open the store's
        secrets.
        """
        key, recorded = key_store.store_key(self.db, self._key_source(), create=False)
        if key is None:
            return "no secret key yet (made on the first submit)"
        if recorded is None:
            return f"{fingerprint(key)} (the store records it on the first submit)"
        return f"{recorded} seals this store's secrets"

    def reset_key(self) -> tuple[str, list[str]]:
        """Make this host's key the store's, for when the key that sealed it is lost.

        Pending jobs whose secrets the key cannot open are cancelled (a retry asks for the
        secrets again). Returns the key's fingerprint and the cancelled jobs' ids.
        """
        self.authorize("reset-key")
        box, found, cancelled = key_store.reset_key(
            self.db, self._key_source(), actor=self.identity.name, now=self.now()
        )
        self._box = box
        return found, cancelled

    def _key_source(self) -> key_store.KeySource:
        return key_store.KeySource(
            Path(self.settings.home),
            self.settings.secret_key,
            access_for(self.settings.share_group),
        )

    def now(self) -> datetime:
        return self.clock.now()

    # -- who may act ----------------------------------------------------------------------

    def store_owner(self) -> int | None:
        """The uid owning a SQLite store file (admin when there is no [roles] table).

        None for a store on a server: there the current user counts as its owner.
        """
        path = self.db.path  # the file the store opened (parsed once, not per call)
        if path is None:
            return None
        try:
            return path.stat().st_uid
        except OSError:
            return os.getuid()  # not made yet: this process is about to make it

    def authorize(self, verb: str, *, template: Any = None, job_id: str | None = None) -> None:
        """Raise Forbidden unless this process's account may ``verb`` (on ``template``'s team).

        A refusal on a job is audited as a ``refused`` event on it (actor, verb, reason); a
        refused submit has no job yet, so it is logged.
        """
        owner = self.store_owner()
        policy = self.settings.policy
        if (
            policy.source_uid is not None
            and owner is not None
            and policy.source_uid not in (0, owner)
        ):
            # roles from a file the caller wrote themselves would grant what they like
            raise Forbidden(
                f"{policy.source}: roles and teams are not trusted: the file belongs to "
                f"{user_name(policy.source_uid)}, not to root or the store's owner "
                f"({user_name(owner)})"
            )
        try:
            access.require(self.identity, verb, template, policy=policy, store_owner=owner)
        except Forbidden as exc:
            # a refusal about no job yet (a submit, a key reset) is recorded under no job
            self.audit_refusal(job_store.NO_JOB if job_id is None else job_id, verb, str(exc))
            raise

    def audit_refusal(self, job_id: str, verb: str, reason: str) -> None:
        """Record a refused action on its job: who tried what, and why not (append-only)."""
        job_store.note(
            self.db,
            job_id,
            "refused",
            self.now(),
            actor=self.identity.name,
            message=reason,
            data={"verb": verb, "reason": reason},
        )

    @property
    def embedded_store(self) -> bool:
        """A store on this host only (SQLite): the console may run its own worker pool."""
        return self.db.dialect == "sqlite"

    def store_description(self) -> str:
        return self.db.describe()

    def resolve(self, ref: str) -> str:
        return queries.resolve(self.db, ref)

    def wake_workers(self) -> None:
        """Poke this host's idle workers after a commit that made a job ready (SQLite; on
        PostgreSQL the commit itself notified every host's workers)."""
        if self.db.dialect == "sqlite":
            wake.notify(self.settings.db)

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (on another thread: it must only set a flag) soon after any
        process commits a change to the store; returns the function that stops it.

        PostgreSQL only (its notifications); elsewhere nothing calls it and the caller's
        polling is all there is. A lost notification only delays the caller's next look.
        """

        def changed(_change: notify.Change) -> None:
            callback()

        return notify.subscribe(self.db, changed)

    def wake_problem(self) -> str | None:
        """Why this process hears no notifications from the store now; None when it does."""
        return notify.problem(self.db)

    # -- submit -------------------------------------------------------------------

    def submit(self, req: SubmitRequest, *, template: Template | None = None) -> JobView:
        """Validate and enqueue a job from a template.

        Args:
            req: the template, raw parameters (strings from a command line or typed
                values), and scheduling options; ``run_at`` and ``run_in`` exclude each other.
            template: the snapshot to run instead of the catalog's (an instance's destroy).
        """
        row, after = self._prepare(req, template=template)
        actor, now = row["submitted_by"], row["created_at"]
        for _ in range(5):
            try:
                out = job_store.submit(
                    self.db, {**row, "id": new_job_id()}, after, actor=actor, now=now
                )
                break
            except Conflict:
                continue
        else:  # pragma: no cover - 27^6 ids
            raise Conflict("could not allocate a job id")
        if out["state"] == S.QUEUED.value:  # the store may have released a waiting job
            self.wake_workers()
        return JobView.from_row(out, depends_on=after)

    def submit_many(self, reqs: Sequence[SubmitRequest]) -> list[JobView]:
        """Validate and enqueue several jobs in one transaction: all of them or none.

        Each request is checked as ``submit`` checks it, and any refusal refuses the batch
        before anything is stored. For a program that enqueues many jobs at once this costs
        one commit and one wake-up instead of one per job.
        """
        prepared = [self._prepare(req) for req in reqs]
        if not prepared:
            return []
        rows = job_store.submit_many(
            self.db, prepared, new_job_id, actor=prepared[0][0]["submitted_by"]
        )
        if any(r["state"] == S.QUEUED.value for r in rows):
            self.wake_workers()
        return [
            JobView.from_row(r, depends_on=after)
            for r, (_, after) in zip(rows, prepared, strict=True)
        ]

    def validate(self, req: SubmitRequest) -> None:
        """Check a submission without storing it: the same errors ``submit`` would raise,
        except a typed confirmation, which a form asks for last."""
        self._prepare(req, confirming=False)

    def job_row(
        self, req: SubmitRequest, *, template: Template | None = None, confirming: bool = True
    ) -> tuple[dict[str, Any], list[str]]:
        """A new job's row (no id yet) and its dependencies, validated and sealed but not
        stored: what ``submit`` inserts, and what a schedule's fire inserts with its ledger row."""
        return self._prepare(req, confirming=confirming, template=template)

    def _prepare(
        self, req: SubmitRequest, *, confirming: bool = True, template: Template | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        tpl = template or self.catalog.get(req.template)
        self.authorize("submit", template=tpl)
        values = validate_params(tpl, req.params)
        now = self.now()
        priority = tpl.priority if req.priority is None else parse_priority(req.priority)
        run_at = self._run_at(req, now)
        retries = tpl.retries if req.retries is None else req.retries
        if retries < 0 or retries > 100:
            raise InvalidParams("retries must be between 0 and 100")
        timeout_s = tpl.timeout_s if req.timeout is None else parse_duration(req.timeout)
        if timeout_s is not None and timeout_s <= 0:
            raise InvalidParams("timeout must be positive")
        tags = self._tags([*tpl.tags, *req.tags])
        if len(req.after) > MAX_DEPENDENCIES:
            raise InvalidParams(f"at most {MAX_DEPENDENCIES} dependencies")
        # two prefixes of one job are one dependency
        after = list(dict.fromkeys(self._resolve_dependency(ref) for ref in req.after))
        public, secret = split_secrets(values, tpl.secret_names())
        if confirming:
            check_confirmation(tpl, public, req.confirm)
        key = None
        if tpl.concurrency_key:
            key = render(tpl.concurrency_key, public)
            if MASK in key and secret:
                raise InvalidParams(
                    f"template '{tpl.name}': the concurrency key may not use a secret parameter"
                )
        limit, phase = tpl.concurrency_limit, None
        if tpl.terraform is not None:  # one job at a time on an instance's state
            instance = instance_name(tpl.terraform, public)
            key, limit, phase = concurrency_key(tpl.name, instance), 1, "plan"
        # a job with unfinished dependencies waits; one for later is scheduled
        state = S.QUEUED
        if after and self._any_unfinished(after):
            state = S.WAITING
        elif run_at > now:
            state = S.SCHEDULED
        gate: dict[str, Any] = {}
        if tpl.approval is not None and phase is None:  # gated: nothing runs before approval
            # (a Terraform job plans first, then parks for the approval of its plan)
            state = S.AWAITING_APPROVAL
            gate = {
                "gate_round": 1,
                "approval_expires_at": now + timedelta(seconds=tpl.approval.expires_s),
            }
        team = tpl.team
        actor = self.identity.name
        row = {
            "template": tpl.name,
            "state": state.value,
            "priority": priority,
            "params": public,
            "secret_blob": self.box.seal(secret),
            "spec": tpl.raw,
            "run_at": run_at,
            "depends_on": after,
            "tags": "," + ",".join(tags) + "," if tags else "",
            "attempts": 0,
            "max_retries": retries,
            "backoff_s": tpl.backoff_s,
            "timeout_s": timeout_s,
            "concurrency_key": key,
            "concurrency_limit": limit,
            "phase": phase,
            "on_interrupt": tpl.on_interrupt,
            "dry_run": req.dry_run,
            "submitted_by": actor,
            "created_at": now,
            "updated_at": now,
            "team": team if isinstance(team, str) else None,
            **gate,
        }
        return row, after

    def _run_at(self, req: SubmitRequest, now: datetime) -> datetime:
        if req.run_at is not None and req.run_in is not None:
            raise InvalidParams("give either --at or --in, not both")
        if req.run_in is not None:
            return now + timedelta(seconds=parse_duration(req.run_in))
        if req.run_at is not None:
            if req.run_at.tzinfo is None:
                raise InvalidParams("--at needs a time zone or is taken as local time by the CLI")
            return max(req.run_at, now)
        return now

    @staticmethod
    def _tags(tags: list[str]) -> list[str]:
        out = list(dict.fromkeys(t.strip() for t in tags if t.strip()))
        for t in out:
            if "," in t or len(t) > 64 or not t.isprintable():
                raise InvalidParams(
                    f"invalid tag '{t[:40]}': up to 64 printable characters, no commas"
                )
        if len(out) > MAX_TAGS:
            raise InvalidParams(f"at most {MAX_TAGS} tags")
        return out

    def _resolve_dependency(self, ref: str) -> str:
        try:
            return queries.resolve(self.db, ref)
        except NotFound:
            raise NotFound(f"dependency: no job matches '{ref[:20]}'") from None

    def _any_unfinished(self, ids: list[str]) -> bool:
        return any(self.get(i).state != S.SUCCEEDED for i in ids)

    # -- reading jobs ----------------------------------------------------------------

    def get(self, ref: str, *, with_events: bool = False) -> JobView:
        job_id = queries.resolve(self.db, ref)
        row, deps = queries.get(self.db, job_id)
        events = None
        if with_events:
            events = tuple(EventView.from_row(e) for e in feed.job_events(self.db, job_id))
        return self.with_frozen([JobView.from_row(row, depends_on=deps, events=events)])[0]

    def list_jobs(self, req: ListRequest) -> Page:
        for s in req.states:
            if s not in S.__members__.values():
                known = ", ".join(x.value for x in S)
                raise InvalidParams(f"unknown state '{s[:30]}' (known: {known})")
        if req.page < 1 or not 1 <= req.page_size <= 1000:
            raise InvalidParams("page must be >= 1 and page size 1..1000")
        if req.team is not None:
            access.check_team_name(req.team)
        since = None
        if req.since:
            since = self.now() - timedelta(seconds=parse_duration(req.since))
        f = queries.JobFilter(
            states=req.states,
            template=req.template,
            tag=req.tag,
            since=since,
            text=req.text,
            team=req.team,
        )
        rows, total = queries.list_jobs(self.db, f, page=req.page, page_size=req.page_size)
        views = self.with_frozen([JobView.from_row(r) for r in rows])
        return Page(views, total, req.page, req.page_size)

    # -- operator actions -------------------------------------------------------------

    def cancel(self, ref: str, *, reason: str = "") -> JobView:
        """Cancel a pending job at once, or ask the worker to stop a running one; a request
        awaiting approval is withdrawn by its submitter instead (``withdraw``)."""
        job_id = queries.resolve(self.db, ref)
        self.authorize("cancel", template=self._job_team(job_id), job_id=job_id)
        if self.get(job_id).state == S.AWAITING_APPROVAL:
            try:
                return self.withdraw(job_id)
            except Forbidden as exc:
                self.audit_refusal(job_id, "cancel", str(exc))
                raise
        row = job_store.request_cancel(
            self.db, job_id, reason=reason, actor=self.identity.name, now=self.now()
        )
        if row["state"] == S.RUNNING.value:
            self.wake_workers()
        return self.get(job_id)

    def retry(self, ref: str, *, params: Mapping[str, Any] | None = None) -> JobView:
        """Queue a new attempt of a failed, timed out, cancelled, interrupted or partial job.

        What this reads first only shapes the questions (which secrets to ask for again);
        the store refuses the retry unless the job is still in a state it can be retried
        from when the write happens, so a stale retry never requeues a running job.

        Args:
            params: secret parameters again (they are dropped when a job ends); other
                parameters cannot change on a retry.
        """
        job_id = queries.resolve(self.db, ref)
        tpl = self._job_template(job_id)
        self.authorize("retry", template=tpl.team, job_id=job_id)
        view = self.get(job_id)
        if not view.can_retry:
            raise InvalidTransition(f"cannot retry job {job_id}: it is {view.state.value}")
        given = dict(params or {})
        extra = sorted(set(given) - tpl.secret_names())
        if extra:
            raise InvalidParams(
                f"only secret parameters can be given on a retry; '{extra[0]}' is not secret "
                f"(submit a new job to change it)"
            )
        secret_names = tpl.secret_names()
        dropped = {k for k, v in view.params.items() if k in secret_names and v == MASK}
        # before validating: a required secret must get this hint, not "missing parameter"
        missing = sorted(dropped - set(given))
        if missing:
            raise InvalidParams(
                f"job {job_id} needs its secret parameters again (they are dropped when a job "
                f"ends): -p {missing[0]}=..."
            )
        wanted = {k: v for k, v in view.params.items() if k not in dropped}
        values = validate_params(tpl, {**wanted, **given})
        _, secret = split_secrets(values, tpl.secret_names())
        now = self.now()
        gate, phase = None, None
        if tpl.runner == "terraform":
            # it plans again first (a plan changes nothing), then parks for the approval of
            # that plan: an approver never approves a retry without seeing what it applies
            phase = "plan"
        elif tpl.approval is not None:  # a new attempt of a gated job needs a new approval
            gate = now + timedelta(seconds=tpl.approval.expires_s)
        row = job_store.retry(
            self.db,
            job_id,
            now,
            actor=self.identity.name,
            secret_blob=self.box.seal(secret),
            gate_expires_at=gate,
            phase=phase,
        )
        self.wake_workers()
        return JobView.from_row(row, depends_on=view.depends_on)

    def _job_template(self, job_id: str) -> Template:
        from opsconsole.core.catalog import template_from_dict

        row, _ = queries.get(self.db, job_id)
        return template_from_dict(row["spec"])

    def _job_team(self, job_id: str) -> str | None:
        """The team of the template snapshot a job was submitted with (what it will run).

        Read from the snapshot without validating it: a job whose template no longer
        parses must still be cancellable.
        """
        row, _ = queries.get(self.db, job_id)
        spec = row["spec"]
        team = spec.get("team") if isinstance(spec, dict) else None
        return team if isinstance(team, str) else None

    def add_dependencies(self, ref: str, after: list[str]) -> JobView:
        """Hold a job that has not started until more jobs succeed; refuses cycles."""
        job_id = queries.resolve(self.db, ref)
        self.authorize("after", job_id=job_id)
        dep_ids = [self._resolve_dependency(a) for a in after]
        job_store.add_dependencies(
            self.db, job_id, dep_ids, actor=self.identity.name, now=self.now()
        )
        return self.get(job_id)

    def set_priority(self, ref: str, priority: str | int) -> JobView:
        job_id = queries.resolve(self.db, ref)
        self.authorize("priority", job_id=job_id)
        job_store.set_priority(
            self.db, job_id, parse_priority(priority), actor=self.identity.name, now=self.now()
        )
        return self.get(job_id)

    def wait(
        self,
        ref: str,
        *,
        timeout: float | None = None,
        on_update: Callable[[JobView], None] | None = None,
        interval: float = 0.2,
    ) -> JobView:
        """Block until the job is final (or ``timeout`` seconds pass); returns its last view.

        It looks every ``interval`` seconds, and at once when the store notifies a change.
        """
        job_id = queries.resolve(self.db, ref)
        deadline = None if timeout is None else time.monotonic() + timeout
        changed = threading.Event()
        stop = self.on_change(changed.set)
        try:
            while True:
                view = self.get(job_id)
                if on_update is not None:
                    on_update(view)
                if view.state in FINAL:
                    return view
                if deadline is not None and time.monotonic() >= deadline:
                    return view
                changed.wait(
                    interval
                    if deadline is None
                    else min(interval, max(0.0, deadline - time.monotonic()))
                )
                changed.clear()
        finally:
            stop()

    def resize_worker(self, ref: str, slots: int) -> WorkerView:
        """Change the slots of a running worker pool (admin only)."""
        self.authorize("resize")
        return super().resize_worker(ref, slots)

    # -- the console's board ----------------------------------------------------------

    def queue(self, limit: int = 500) -> list[JobView]:
        """Jobs waiting for approval, dependencies, their run time or a slot: claim order."""
        return self.with_frozen([JobView.from_row(r) for r in queries.queue_rows(self.db, limit)])

    def running(self, limit: int = 500) -> list[JobView]:
        return [JobView.from_row(r) for r in queries.running_rows(self.db, limit)]

    def history(
        self,
        *,
        before: tuple[datetime, str] | None = None,
        limit: int = 100,
        template: str | None = None,
        tag: str | None = None,
        text: str | None = None,
    ) -> list[JobView]:
        """Finished jobs, newest first; pass the last row's (finished_at, id) for the next page."""
        f = queries.JobFilter(template=template, tag=tag, text=text)
        rows = queries.history_rows(self.db, f, before=before, limit=limit)
        return [JobView.from_row(r) for r in rows]

    def jobs_by_id(self, ids: list[str]) -> list[JobView]:
        return self.with_frozen([JobView.from_row(r) for r in queries.rows_by_id(self.db, ids)])

    def counts(self) -> dict[str, int]:
        counts = queries.counts_by_state(self.db)
        return {s.value: counts.get(s.value, 0) for s in S}

    def live_counts(self) -> dict[str, int]:
        """Jobs per live state (awaiting approval, waiting, scheduled, queued, running).

        The console's header reads these every few seconds; they come from the state
        index, so they cost what is live, not what is in history (see ``counts``)."""
        counts = queries.live_counts_by_state(self.db)
        return {s.value: counts.get(s.value, 0) for s in LIVE}

    def history_after(
        self,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
        text: str | None = None,
    ) -> list[JobView]:
        """Finished jobs, OLDEST first, after (finished_at, id) (None: from the oldest).

        ``history`` walks from the newest job down; this walks up, so the console can show
        the far end of a million-job history (End) and page back towards the newest."""
        f = queries.JobFilter(text=text)
        rows = queries.history_rows_after(self.db, f, after=after, limit=limit)
        return [JobView.from_row(r) for r in rows]

    def search_log(self, ref: str, text: str, *, after: int = 0, limit: int = 1000) -> list[int]:
        job_id = queries.resolve(self.db, ref)
        return feed.search_logs(self.db, job_id, text, after=after, limit=limit)

    # -- feeds -----------------------------------------------------------------------

    def events_since(
        self, cursor: int, *, job: str | None = None, limit: int = 500
    ) -> list[EventView]:
        job_id = queries.resolve(self.db, job) if job else None
        return [
            EventView.from_row(r)
            for r in feed.events_since(self.db, cursor, job_id=job_id, limit=limit)
        ]

    def recent_events(self, limit: int, *, job: str | None = None) -> list[EventView]:
        job_id = queries.resolve(self.db, job) if job else None
        return [EventView.from_row(r) for r in feed.recent_events(self.db, limit, job_id=job_id)]

    def last_event_id(self) -> int:
        return feed.last_event_id(self.db)

    def logs_since(self, ref: str, after: int = 0, *, limit: int = 1000) -> list[LogLine]:
        job_id = queries.resolve(self.db, ref)
        return [LogLine.from_row(r) for r in feed.logs_since(self.db, job_id, after, limit)]

    def log_tail(self, ref: str, lines: int, *, before: int | None = None) -> list[LogLine]:
        job_id = queries.resolve(self.db, ref)
        return [LogLine.from_row(r) for r in feed.logs_before(self.db, job_id, before, lines)]
