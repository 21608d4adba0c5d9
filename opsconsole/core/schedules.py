"""Schedules: recurring jobs from a template, and the ledger of every fire. OpsService's mixin.

The only place that validates a schedule, decides what becomes of each fire time (fired,
missed, skipped: catch-up, overlap, freezes, pauses) and builds the jobs fires submit. When a
cron schedule fires is computed by APScheduler in the engine (``engine/fire_times.py``); the
domain never imports it, so the service is given that function (``FireTimes``) by whoever
builds it (``runtime.open_service``), and the engine's tick passes its own.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsconsole.core import fire_plan
from opsconsole.core.catalog import parse_duration
from opsconsole.core.catalog.durations import format_duration
from opsconsole.core.catalog.messages import printable
from opsconsole.core.catalog.schedule import CATCHUPS, OVERLAPS
from opsconsole.core.cron import check_zone, parse_cron
from opsconsole.core.errors import InvalidParams, OpsError
from opsconsole.core.fire_plan import FireTimes, due_times, following, plan
from opsconsole.core.host import ServiceHost
from opsconsole.core.ids import new_job_id
from opsconsole.core.secrets import MASK, split_secrets
from opsconsole.core.store import freezes as freeze_store
from opsconsole.core.store import schedules as store
from opsconsole.core.store.schedules import FIRED, MISSED, PAUSED, SKIPPED, Fire
from opsconsole.core.views import JobView, iso

if TYPE_CHECKING:
    from sqlalchemy.engine import RowMapping

    from opsconsole.core.catalog import Template

log = logging.getLogger("opsconsole.schedules")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NEXT_FIRES = 5


@dataclass(frozen=True)
class ScheduleRequest:
    """A new schedule: exactly one of ``cron`` and ``every``; durations as text (``15m``)."""

    name: str
    template: str
    params: Mapping[str, Any] = field(default_factory=dict)
    cron: str | None = None
    tz: str | None = None
    """The zone of a cron schedule's wall-clock times (default UTC)."""
    every: str | None = None
    jitter: str | None = None
    catchup: str = "latest"
    overlap: str = "skip"


@dataclass(frozen=True)
class ScheduleView:
    name: str
    template: str
    params: dict[str, Any]
    """Its parameters, secret ones masked."""
    cron: str | None
    tz: str
    every: str | None
    """The interval as a duration (``15m``) when it is not a cron schedule."""
    jitter: str | None
    catchup: str
    overlap: str
    paused: bool
    origin: str
    """``cli`` (added by an operator) or ``template`` (a template's ``schedule:`` block)."""
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    last_job: str | None
    last_job_state: str | None
    created_by: str

    @property
    def when(self) -> str:
        """``cron '30 2 * * *' Europe/Berlin`` or ``every 15m``: what listings show."""
        return f"{self.cron} ({self.tz})" if self.cron else f"every {self.every}"

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> ScheduleView:
        return cls(
            name=r["name"],
            template=r["template"],
            params=dict(r["params"] or {}),
            cron=r["cron"],
            tz=r["tz"],
            every=format_duration(r["every_s"]) if r["every_s"] else None,
            jitter=format_duration(r["jitter_s"]) if r["jitter_s"] else None,
            catchup=r["catchup"],
            overlap=r["overlap"],
            paused=bool(r["paused"]),
            origin=r["origin"],
            next_fire_at=r["next_fire_at"],
            last_fire_at=r["last_fire_at"],
            last_job=r["last_job"],
            last_job_state=r.get("last_job_state"),
            created_by=r["created_by"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "template": self.template,
            "params": self.params,
            "cron": self.cron,
            "tz": self.tz,
            "every": self.every,
            "jitter": self.jitter,
            "catchup": self.catchup,
            "overlap": self.overlap,
            "paused": self.paused,
            "origin": self.origin,
            "next_fire_at": iso(self.next_fire_at),
            "last_fire_at": iso(self.last_fire_at),
            "last_job": self.last_job,
            "last_job_state": self.last_job_state,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class FireView:
    """One ledger row: a fire time and what became of it."""

    schedule: str
    fire_at: datetime
    status: str
    """``fired``, ``missed`` or ``skipped``."""
    job_id: str | None
    job_state: str | None
    reason: str
    actor: str
    recorded_at: datetime

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> FireView:
        return cls(
            schedule=r["schedule"],
            fire_at=r["fire_at"],
            status=r["status"],
            job_id=r["job_id"],
            job_state=r.get("job_state"),
            reason=r["reason"],
            actor=r["actor"],
            recorded_at=r["recorded_at"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "fire_at": iso(self.fire_at),
            "status": self.status,
            "job_id": self.job_id,
            "job_state": self.job_state,
            "reason": self.reason,
            "actor": self.actor,
            "recorded_at": iso(self.recorded_at),
        }


@dataclass(frozen=True)
class ScheduleDetail:
    """A schedule, its next fire times and its ledger (newest first)."""

    view: ScheduleView
    next_fires: list[datetime]
    ledger: list[FireView]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.view.to_dict(),
            "next_fires": [iso(t) for t in self.next_fires],
            "ledger": [f.to_dict() for f in self.ledger],
        }


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidParams(
            f"name: {printable(str(name))!r} is not a schedule name "
            "(letters, digits, '.', '_', '-'; up to 64; starting with a letter or digit)"
        )
    return name


def check_choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise InvalidParams(f"{what}: {printable(str(value))!r} is not one of {'|'.join(allowed)}")
    return value


def positive_duration(text: str | int | float, what: str) -> float:
    try:
        seconds = parse_duration(text)
    except InvalidParams as exc:
        raise InvalidParams(f"{what}: {exc}") from None
    if seconds <= 0:
        raise InvalidParams(f"{what}: must be above zero (got {printable(str(text))!r})")
    return seconds


class SchedulesMixin(ServiceHost):
    """add / list / show / pause / resume / remove / run, and the fire itself."""

    fire_times: FireTimes | None
    """Set by ``OpsService.__init__``; ``runtime.open_service`` gives APScheduler's."""

    if TYPE_CHECKING:

        def job_row(
            self, req: Any, *, template: Template | None = None, confirming: bool = True
        ) -> tuple[dict[str, Any], list[str]]: ...

    def _times(self) -> FireTimes:
        if self.fire_times is None:
            raise OpsError(
                "this service was built without fire times: open it with "
                "runtime.open_service, or pass fire_times=engine.fire_times.fire_times"
            )
        return self.fire_times

    # -- reading ---------------------------------------------------------------------

    def schedules(self) -> list[ScheduleView]:
        """Every schedule by name, with its next fire and its last job's state."""
        return [ScheduleView.from_row(r) for r in store.list_all(self.db)]

    def schedule(self, name: str, *, ledger: int = store.LEDGER_LIMIT) -> ScheduleDetail:
        """A schedule, its next ``NEXT_FIRES`` fire times and its newest ledger rows.

        Args:
            ledger: how many ledger rows, newest first.
        """
        row = store.get(self.db, name)
        start, now = row["next_fire_at"], self.now()
        nxt: list[datetime] = []
        if row["paused"] and start is not None and start <= now:
            # what it fires after a resume now: the times passed meanwhile are missed
            nxt = following(row, now, self._times(), limit=NEXT_FIRES)
        elif start is not None:
            nxt = [start, *following(row, start, self._times(), limit=NEXT_FIRES - 1)]
        fires = [FireView.from_row(r) for r in store.ledger(self.db, name, limit=ledger)]
        return ScheduleDetail(ScheduleView.from_row(row), nxt, fires)

    def schedule_names(self) -> list[str]:
        return store.names(self.db)

    # -- changing ----------------------------------------------------------------------

    def add_schedule(self, req: ScheduleRequest) -> ScheduleView:
        """Validate and store a schedule (nothing is stored on any refusal).

        Args:
            req: durations (``every``, ``jitter``) as text like ``15m``; ``params`` as a
                command line gives them (strings) or typed; secret ones are sealed.
        """
        row = self.schedule_row(req, origin="cli", times=self._times())
        stored = store.insert(self.db, row, actor=self.identity.name, now=self.now())
        return ScheduleView.from_row(stored)

    def schedule_row(
        self, req: ScheduleRequest, *, origin: str, times: FireTimes
    ) -> dict[str, Any]:
        """A new schedule's row, validated (secrets sealed, first fire time set), not stored."""
        name = check_name(req.name)
        if (req.cron is None) == (req.every is None):
            raise InvalidParams("cron/every: give exactly one of --cron and --every")
        cron, tz, every_s = None, req.tz or "UTC", None
        if req.cron is not None:
            cron = parse_cron(req.cron).expr
            check_zone(tz)
        elif req.tz is not None:
            raise InvalidParams("tz: a zone only applies to --cron")
        else:
            assert req.every is not None
            every_s = positive_duration(req.every, "every")
        jitter_s = 0.0
        if req.jitter is not None:
            jitter_s = parse_duration_named(req.jitter, "jitter")
        catchup = check_choice(req.catchup, CATCHUPS, "catchup")
        overlap = check_choice(req.overlap, OVERLAPS, "overlap")
        tpl = self.current_catalog().get(req.template)
        if tpl.confirm is not None:
            raise InvalidParams(
                f"template: '{tpl.name}' asks for a typed confirmation; it cannot be scheduled"
            )
        self.authorize("submit", template=tpl)
        from opsconsole.core.catalog import validate_params

        values = validate_params(tpl, req.params)
        public, secret = split_secrets(values, tpl.secret_names())
        now = self.now()
        row: dict[str, Any] = {
            "name": name,
            "template": tpl.name,
            "params": {k: v for k, v in public.items() if req.params.get(k) is not None},
            "secret_blob": self.box.seal(secret),
            "cron": cron,
            "tz": tz,
            "every_s": every_s,
            "jitter_s": jitter_s,
            "catchup": catchup,
            "overlap": overlap,
            "paused": False,
            "origin": origin,
            "last_fire_at": None,
            "last_job": None,
            "created_by": self.identity.name,
            "created_at": now,
            "updated_at": now,
        }
        row["next_fire_at"] = following({**row, "next_fire_at": None}, now, times)[0]
        return row

    def pause_schedule(self, name: str) -> ScheduleView:
        """Stop firing; the fire times that pass while paused are recorded missed on resume."""
        self._authorize_schedule(name)
        store.pause(self.db, name, actor=self.identity.name, now=self.now())
        return ScheduleView.from_row(store.get(self.db, name))

    def resume_schedule(self, name: str) -> ScheduleView:
        """Fire again from now; each fire time that passed while paused is recorded
        ``missed`` ("paused") and never run (``run_missed`` runs them on purpose)."""
        row = self._authorize_schedule(name)
        now = self.now()
        missed, cursor = due_times(row, now, self._times(), cap=100 * fire_plan.MAX_FIRES)
        if row["next_fire_at"] is not None and row["next_fire_at"] <= now and missed:
            # beyond the cap (a tiny interval paused for long), the rest are not listed
            cursor = following(row, now, self._times())[0]
        store.resume(
            self.db,
            name,
            old=row["next_fire_at"],
            missed=missed,
            next_fire_at=cursor,
            actor=self.identity.name,
            now=now,
        )
        return ScheduleView.from_row(store.get(self.db, name))

    def remove_schedule(self, name: str) -> ScheduleView:
        """Delete a schedule added by an operator (its ledger stays as history); a template's
        schedule goes when its template stops declaring it."""
        row = self._authorize_schedule(name)
        if row["origin"] == "template":
            raise InvalidParams(
                f"schedule {name} is declared by template '{row['template']}': remove its "
                "schedule: block from the template instead"
            )
        store.remove(self.db, name, actor=self.identity.name, now=self.now())
        return ScheduleView.from_row(row)

    def run_schedule(self, name: str) -> JobView:
        """Fire now, whatever the schedule's times (its ledger records ``run by ACTOR``)."""
        row = self._authorize_schedule(name)
        now = self.now()
        fire = self._fire(row, now, FIRED, f"run by {self.identity.name}", by_hand=True)
        store.record(self.db, name, [fire], overlap="allow", actor=self.identity.name, now=now)
        self.wake_workers()
        return self.with_frozen([JobView.from_row(fire.result["job"])])[0]

    def run_missed(self, name: str) -> list[JobView]:
        """Submit a job for each ``missed`` ledger row (oldest first) and mark it fired.

        Fires missed while the schedule was paused are left alone: pausing was the choice.
        """
        row = self._authorize_schedule(name)
        now = self.now()
        rows = store.ledger(
            self.db,
            name,
            status=MISSED,
            oldest_first=True,
            limit=fire_plan.MAX_FIRES,
            not_reason=PAUSED,
        )
        fires = []
        for r in rows:
            fire = self._fire(row, r["fire_at"], FIRED, "", by_hand=True, now=now)
            fire.reason = f"run missed by {self.identity.name} (was: {r['reason']})"
            fires.append(fire)
        jobs = store.run_missed(self.db, name, fires, actor=self.identity.name, now=now)
        if jobs:
            self.wake_workers()
        return self.with_frozen([JobView.from_row(j) for j in jobs])

    def skip_to_now(self, name: str) -> int:
        """Record every fire time due but not yet fired as skipped and move the cursor
        past now; returns how many were skipped."""
        row = self._authorize_schedule(name)
        now = self.now()
        times, cursor = due_times(row, now, self._times(), cap=100 * fire_plan.MAX_FIRES)
        if not times:
            return 0
        if cursor is not None and cursor <= now:
            cursor = following(row, now, self._times())[0]
        return store.skip(
            self.db,
            name,
            old=row["next_fire_at"],
            times=times,
            next_fire_at=cursor,
            reason=f"skipped to now by {self.identity.name}",
            actor=self.identity.name,
            now=now,
        )

    def _authorize_schedule(self, name: str) -> RowMapping:
        row = store.get(self.db, name)
        tpl = self.current_catalog().templates.get(row["template"])
        self.authorize("submit", template=tpl)
        return row

    # -- firing (the engine's tick) --------------------------------------------------

    def due_schedules(self, now: datetime) -> list[RowMapping]:
        """Unpaused schedules whose next fire time has come."""
        return store.due(self.db, now)

    def fire_schedule(self, row: RowMapping, now: datetime, *, times: FireTimes) -> bool:
        """Fire one due schedule at ``now`` by its policies, in one transaction; False when
        another process fired it first (then nothing is written)."""
        due, cursor = due_times(row, now, times)
        if not due:
            return False
        complete = cursor is None or cursor > now
        fires = [
            self._fire(row, t, status, reason, now=now)
            for t, status, reason in plan(row["catchup"], due, now, complete=complete)
        ]
        done = store.advance(
            self.db,
            row["name"],
            old=row["next_fire_at"],
            next_fire_at=cursor,
            fires=fires,
            overlap=row["overlap"],
            actor="scheduler",
            now=now,
        )
        if done and any(f.result.get("job") for f in fires):
            self.wake_workers()
        return done

    def _fire(
        self,
        row: Mapping[str, Any],
        fire_at: datetime,
        status: str,
        reason: str,
        *,
        by_hand: bool = False,
        now: datetime | None = None,
    ) -> Fire:
        """A ledger entry for ``fire_at``; when it is to fire, its job row, or ``skipped``
        with the reason when the template, its parameters or a freeze stand in the way."""
        fire = Fire(fire_at, status, reason)
        if status != FIRED:
            return fire
        now = now or self.now()
        try:
            fire.job = self._job_for(row, fire_at, by_hand=by_hand, now=now)
        except OpsError as exc:
            if by_hand:  # the operator hears the refusal itself (its exit code too)
                raise
            log.warning("schedule %s: fire at %s skipped: %s", row["name"], iso(fire_at), exc)
            fire.status, fire.reason = SKIPPED, f"cannot submit: {exc}"
            return fire
        # a fire by hand is a submit: a freeze holds its job as it holds any (it waits)
        held = None if by_hand else self._freeze_holding(fire.job, now)
        if held:
            fire.status, fire.reason, fire.job = SKIPPED, held, None
            return fire
        fire.message = f"fired by schedule {row['name']} for {iso(fire_at)}"
        return fire

    def _job_for(
        self, row: Mapping[str, Any], fire_at: datetime, *, by_hand: bool, now: datetime
    ) -> dict[str, Any]:
        from opsconsole.core.service import SubmitRequest

        tpl = self.current_catalog().get(row["template"])
        params = {k: v for k, v in dict(row["params"] or {}).items() if v != MASK}
        params.update(self.box.open(row["secret_blob"]))
        # a fire by hand (run, run missed) runs now; a tick's at its time plus the jitter
        delay = random.uniform(0, row["jitter_s"]) if row["jitter_s"] else 0.0
        run_at = now if by_hand else max(fire_at + timedelta(seconds=delay), now)
        job, _ = self.job_row(
            SubmitRequest(template=tpl.name, params=params, run_at=run_at),
            template=tpl,
            confirming=False,
        )
        job.update(
            id=new_job_id(),
            schedule=row["name"],
            submitted_by=row["created_by"] or job["submitted_by"],
            created_at=now,
            updated_at=now,
            run_at=run_at,
        )
        if job["state"] in ("queued", "scheduled"):  # a gated job stays awaiting approval
            job["state"] = "scheduled" if run_at > now else "queued"
        return job

    def _freeze_holding(self, job: Mapping[str, Any], now: datetime) -> str | None:
        """Why an active freeze would hold this job (``frozen: freeze N (tag x): reason``)."""
        for f in freeze_store.list_freezes(self.db, now, include_ended=False):
            if freeze_store.matches(f, job):
                return f"frozen: freeze {f['id']} ({freeze_store.describe(f)}): {f['reason']}"
        return None


def parse_duration_named(text: str, what: str) -> float:
    """A duration of zero or more, the refusal naming the field."""
    try:
        return parse_duration(text)
    except InvalidParams as exc:
        raise InvalidParams(f"{what}: {exc}") from None
