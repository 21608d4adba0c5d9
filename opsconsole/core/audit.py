"""The audit trail as a read model: who did what to which job, and when. OpsService's mixin.

The trail is the events table (every verb writes its event in the same transaction as its
change); this module only reads it, newest first, and says which event kinds an
``--action`` names. Nothing here writes or deletes an event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opsconsole.core.catalog import parse_duration
from opsconsole.core.errors import InvalidParams
from opsconsole.core.host import ServiceHost
from opsconsole.core.states import EVENTS, FINAL, Verb
from opsconsole.core.store import audit as audit_store
from opsconsole.core.store import queries
from opsconsole.core.views import EventView

if TYPE_CHECKING:
    pass

MAX_AUDIT_PAGE = 1000

ACTION_KINDS: dict[str, frozenset[str]] = {
    **{verb.value: frozenset({EVENTS[verb]}) for verb in Verb},
    Verb.CANCEL.value: frozenset({EVENTS[Verb.CANCEL], "cancel_requested"}),
    # a finish is written as the state it ends in, or ``retried`` for a retry after backoff
    Verb.FINISH.value: frozenset({s.value for s in FINAL} | {"retried"}),
    # each approval counts before the gate opens; a request nobody answered expires; a
    # change after approval voids the round (``core/approvals.py``)
    Verb.APPROVE.value: frozenset({EVENTS[Verb.APPROVE], "approval_added"}),
    # a submitter withdrawing their own request is a rejection too
    Verb.REJECT.value: frozenset({EVENTS[Verb.REJECT], "expired", "withdrawn"}),
    "expire": frozenset({"expired"}),
    "withdraw": frozenset({"withdrawn"}),
    # a break-glass run leaves a review another person acknowledges (``core/reviews.py``)
    "review": frozenset({"review_acked"}),
    "void": frozenset({"approval_void"}),
    # a schedule's life is about no single job (``core/schedules.py``); a fire is its job's
    # ``submitted``
    "schedule": frozenset(
        {f"schedule.{k}" for k in ("added", "changed", "paused", "resumed", "removed")}
    ),
    # a freeze is about no single job: its events carry an empty job id
    "freeze": frozenset({"freeze", "freeze_lifted"}),
    # an action the caller's role or team does not allow, or a gated run without approval
    "refused": frozenset({"refused"}),
}
"""The event kinds each action (a verb's name) writes: ``--action cancel`` lists both the
cancellation of a pending job and the request to stop a running one."""

_KIND = re.compile(r"^[a-z_]{1,32}$")


def kinds_for(action: str) -> frozenset[str]:
    """The event kinds ``action`` names: a verb (``cancel``) or an event kind itself
    (``cancel_requested``); anything else is refused with the known names."""
    action = action.strip().lower()
    if action in ACTION_KINDS:
        return ACTION_KINDS[action]
    known_kinds = frozenset().union(*ACTION_KINDS.values())
    if action in known_kinds:
        return frozenset({action})
    shown = action[:32] if _KIND.match(action) else repr(action[:32])
    verbs = ", ".join(v.value for v in Verb)
    raise InvalidParams(f"unknown action {shown} (known: {verbs}, or an event kind)")


@dataclass(frozen=True)
class AuditRequest:
    since: str | None = None
    """A duration back from now (``1h``, ``2d``)."""
    actor: str | None = None
    job: str | None = None
    """A job id or a unique prefix of it."""
    action: str | None = None
    """A verb (``cancel``) or an event kind (``cancel_requested``)."""
    before: int | None = None
    """An event id: the page continues below it (the previous page's ``next_before``)."""
    limit: int = 50


@dataclass(frozen=True)
class AuditPage:
    events: list[EventView]
    next_before: int | None
    """Pass as ``before`` for the next (older) page; None when this page is the last."""

    def to_dict(self) -> dict[str, Any]:
        return {"events": [e.to_dict() for e in self.events], "next_before": self.next_before}


class AuditMixin(ServiceHost):
    def audit(self, req: AuditRequest) -> AuditPage:
        """Events newest first, without progress ticks, one keyset page at a time."""
        if not 1 <= req.limit <= MAX_AUDIT_PAGE:
            raise InvalidParams(f"the limit must be between 1 and {MAX_AUDIT_PAGE}")
        if req.before is not None and req.before < 1:
            raise InvalidParams("--before takes an event id from a previous page")
        since = None
        if req.since:
            since = self.now() - timedelta(seconds=parse_duration(req.since))
        job_id = queries.resolve(self.db, req.job) if req.job else None
        f = audit_store.AuditFilter(
            since=since,
            actor=req.actor or None,
            job_id=job_id,
            kinds=kinds_for(req.action) if req.action else (),
        )
        rows = audit_store.audit_rows(self.db, f, before=req.before, limit=req.limit + 1)
        more = len(rows) > req.limit
        shown = [EventView.from_row(r) for r in rows[: req.limit]]
        return AuditPage(shown, shown[-1].id if more and shown else None)
