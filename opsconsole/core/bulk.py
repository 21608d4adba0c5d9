"""Bulk cancel and retry: select the matching jobs, then act on each with its normal verb.

A mixin of ``OpsService``. The selection is one indexed query with a cap; the action is the
ordinary ``cancel``/``retry`` per job, so each job's own rules apply and each writes its own
audited event. A job that moved on since the selection is skipped and reported, never forced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opsconsole.core.catalog import parse_duration
from opsconsole.core.errors import (
    Forbidden,
    InvalidParams,
    InvalidTransition,
    NotFound,
    OpsError,
)
from opsconsole.core.host import ServiceHost
from opsconsole.core.states import FINAL, JobState, Verb, sources
from opsconsole.core.store import queries

if TYPE_CHECKING:
    pass

BULK_VERBS = (Verb.CANCEL, Verb.RETRY)
DEFAULT_BULK_LIMIT = 100
"""A bulk action refuses more matches than this unless the caller raises its limit."""
MAX_BULK_LIMIT = 10_000


@dataclass(frozen=True)
class BulkRequest:
    verb: Verb
    states: tuple[str, ...] = ()
    """Empty: every state the verb acts from."""
    template: str | None = None
    tag: str | None = None
    since: str | None = None
    """Created within this duration back from now (as ``jobs list --since``)."""
    limit: int = DEFAULT_BULK_LIMIT
    reason: str = ""


@dataclass(frozen=True)
class BulkOutcome:
    job: str
    acted: bool
    state: str | None
    """The job's state after the action (or as found, when skipped); None if it is gone."""
    reason: str = ""
    """Why it was skipped."""

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "acted": self.acted, "state": self.state, "reason": self.reason}


@dataclass(frozen=True)
class BulkResult:
    verb: Verb
    outcomes: list[BulkOutcome] = field(default_factory=list)

    @property
    def acted(self) -> list[BulkOutcome]:
        return [o for o in self.outcomes if o.acted]

    @property
    def skipped(self) -> list[BulkOutcome]:
        return [o for o in self.outcomes if not o.acted]

    def summary(self) -> str:
        """``cancelled 12 jobs; 1 skipped: x7k2m9 had already ended (succeeded)``."""
        done = "cancelled" if self.verb == Verb.CANCEL else "retried"
        n = len(self.acted)
        text = f"{done} {n} job{'' if n == 1 else 's'}"
        skipped = self.skipped
        if skipped:
            shown = "; ".join(f"{o.job} {o.reason}" for o in skipped[:3])
            more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
            text += f"; {len(skipped)} skipped: {shown}{more}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.verb.value,
            "acted": len(self.acted),
            "skipped": len(self.skipped),
            "jobs": [o.to_dict() for o in self.outcomes],
        }


class BulkMixin(ServiceHost):
    def bulk_select(self, req: BulkRequest) -> list[str]:
        """The ids of the jobs ``req`` matches, oldest first; refuses more than its limit.

        The same filter as ``jobs list`` (states, template, tag, created since), so a listing
        previews exactly what a bulk action acts on.
        """
        if req.verb not in BULK_VERBS:
            raise InvalidParams(f"no bulk {req.verb.value}: only cancel and retry act in bulk")
        if not (req.states or req.template or req.tag or req.since):
            raise InvalidParams(
                f"a bulk {req.verb.value} needs a filter: --state, --template, --tag or --since"
            )
        if not 1 <= req.limit <= MAX_BULK_LIMIT:
            raise InvalidParams(f"the limit must be between 1 and {MAX_BULK_LIMIT}")
        allowed = sources(req.verb)
        for s in req.states:
            if s not in JobState.__members__.values():
                known = ", ".join(x.value for x in JobState)
                raise InvalidParams(f"unknown state '{s[:30]}' (known: {known})")
            if JobState(s) not in allowed:
                can = ", ".join(sorted(x.value for x in allowed))
                raise InvalidParams(f"{req.verb.value} acts on {can}; not on {s} jobs")
        states = req.states or tuple(sorted(x.value for x in allowed))
        since = None
        if req.since:
            since = self.now() - timedelta(seconds=parse_duration(req.since))
        f = queries.JobFilter(states=states, template=req.template, tag=req.tag, since=since)
        ids = queries.bulk_ids(self.db, f, req.limit + 1)
        if len(ids) > req.limit:
            raise InvalidParams(
                f"more than {req.limit} jobs match: narrow the filter, or raise --limit "
                f"(a bulk {req.verb.value} acts on at most {req.limit} unless told more)"
            )
        return ids

    def bulk_act(self, verb: Verb, ids: Sequence[str], *, reason: str = "") -> BulkResult:
        """Act on each job with the ordinary verb; one that moved on is skipped, with why.

        Args:
            ids: full job ids, as ``bulk_select`` or a console's filtered rows give them.
            reason: a cancellation's reason, kept in each job's audit event.
        """
        if verb not in BULK_VERBS:
            raise InvalidParams(f"no bulk {verb.value}: only cancel and retry act in bulk")
        if len(ids) > MAX_BULK_LIMIT:
            raise InvalidParams(f"a bulk action acts on at most {MAX_BULK_LIMIT} jobs")
        out: list[BulkOutcome] = []
        for job_id in dict.fromkeys(ids):
            try:
                if verb == Verb.CANCEL:
                    view = self.cancel(job_id, reason=reason)
                else:
                    view = self.retry(job_id)
            except (InvalidTransition, NotFound, Forbidden, InvalidParams) as exc:
                out.append(self._skipped(job_id, exc))
                continue
            out.append(BulkOutcome(job_id, True, view.state.value))
        return BulkResult(verb, out)

    def bulk(self, req: BulkRequest) -> BulkResult:
        """Select and act in one call (scripts with ``--yes``; faces that confirm call the
        two halves)."""
        return self.bulk_act(req.verb, self.bulk_select(req), reason=req.reason)

    def _skipped(self, job_id: str, exc: OpsError) -> BulkOutcome:
        try:
            state = self.get(job_id).state
        except NotFound:
            return BulkOutcome(job_id, False, None, "no longer exists")
        if isinstance(exc, InvalidTransition):
            if state in FINAL:
                why = f"had already ended ({state.value})"
            else:
                why = f"is {state.value} now"
            return BulkOutcome(job_id, False, state.value, why)
        why = str(exc).removeprefix(f"job {job_id} ").removeprefix(f"cannot retry job {job_id}: ")
        return BulkOutcome(job_id, False, state.value, why)
