"""Freezes: stop new claims of matching jobs for a while, with a reason. OpsService's mixin.

The only place that validates a freeze (one scope, a one-line reason, an end in the future),
checks who may set or lift one (the admin role), and says why a ready job waits because of
one. The claim itself skips frozen jobs in its own statement (``core/store/claim.py``);
running jobs go on. A freeze ends when lifted or at its ``until`` time, whichever is first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsconsole.core.errors import InvalidParams
from opsconsole.core.host import ServiceHost
from opsconsole.core.states import CLAIMABLE
from opsconsole.core.store import freezes as freeze_store
from opsconsole.core.views import JobView, iso

if TYPE_CHECKING:
    pass

MAX_REASON = 500
MAX_VALUE = 255


@dataclass(frozen=True)
class FreezeRequest:
    """Exactly one of ``all``, ``tag``, ``team``, ``key``; a reason; an optional end."""

    reason: str
    all: bool = False
    tag: str | None = None
    team: str | None = None
    key: str | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class FreezeView:
    id: int
    scope: str
    value: str | None
    reason: str
    created_by: str
    created_at: datetime
    until: datetime | None
    lifted_by: str | None
    lifted_at: datetime | None
    status: str
    """``active``, ``lifted`` or ``ended`` (its ``until`` passed)."""

    @property
    def target(self) -> str:
        """``all jobs``, ``tag nightly``, ``team web``, ``key db-main``."""
        return freeze_store.describe({"scope": self.scope, "value": self.value})

    @property
    def why(self) -> str:
        """What a frozen job's row says: ``frozen: REASON (until TIME)``."""
        end = f"until {self.until:%Y-%m-%d %H:%M}Z" if self.until else "until lifted"
        return f"frozen: {self.reason} ({end})"

    @classmethod
    def from_row(cls, r: Mapping[str, Any], now: datetime) -> FreezeView:
        if r["lifted_at"] is not None:
            status = "lifted"
        elif r["until"] is not None and r["until"] <= now:
            status = "ended"
        else:
            status = "active"
        return cls(
            id=r["id"],
            scope=r["scope"],
            value=r["value"],
            reason=r["reason"],
            created_by=r["created_by"],
            created_at=r["created_at"],
            until=r["until"],
            lifted_by=r["lifted_by"],
            lifted_at=r["lifted_at"],
            status=status,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": self.scope,
            "value": self.value,
            "reason": self.reason,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "until": iso(self.until),
            "lifted_by": self.lifted_by,
            "lifted_at": iso(self.lifted_at),
            "status": self.status,
        }


def _one_line(text: str, what: str, limit: int) -> str:
    text = text.strip()
    if not text:
        raise InvalidParams(f"{what} is required")
    if len(text) > limit or not text.isprintable():
        raise InvalidParams(f"{what}: one line of up to {limit} printable characters")
    return text


class FreezesMixin(ServiceHost):
    def set_freeze(self, req: FreezeRequest) -> FreezeView:
        """Stop new claims of the matching jobs (admin only; audited)."""
        scope, value = self._freeze_scope(req)
        reason = _one_line(req.reason, "a freeze needs a reason (--reason TEXT)", MAX_REASON)
        now = self.now()
        if req.until is not None:
            if req.until.tzinfo is None:
                raise InvalidParams("--until needs a time zone")
            if req.until <= now:
                raise InvalidParams("--until must be in the future")
        self.authorize("freeze")
        row = freeze_store.create(
            self.db,
            scope=scope,
            value=value,
            reason=reason,
            until=req.until,
            actor=self.identity.name,
            now=now,
        )
        return FreezeView.from_row(row, now)

    def _freeze_scope(self, req: FreezeRequest) -> tuple[str, str | None]:
        given = [
            (scope, value)
            for scope, value in (("tag", req.tag), ("team", req.team), ("key", req.key))
            if value is not None
        ]
        if req.all:
            given.insert(0, ("all", None))
        if len(given) != 1:
            raise InvalidParams("give exactly one of --all, --tag, --team or --key")
        scope, value = given[0]
        if value is None:
            return scope, None
        value = _one_line(value, f"--{scope}", 64 if scope == "tag" else MAX_VALUE)
        if scope == "tag" and "," in value:
            raise InvalidParams("--tag: a tag has no commas")
        if scope == "team" and self.settings.policy.team(value) is None:
            raise InvalidParams(
                f"no team '{value[:64]}' in opsconsole.toml (add a [teams.{value[:64]}] table)"
            )
        return scope, value

    def lift_freeze(self, freeze_id: int, *, reason: str = "") -> FreezeView:
        """End a freeze now (admin only; audited); the matching jobs may be claimed again."""
        reason = reason.strip()
        if reason:
            reason = _one_line(reason, "--reason", MAX_REASON)
        self.authorize("freeze")
        now = self.now()
        row = freeze_store.lift(
            self.db, freeze_id, reason=reason, actor=self.identity.name, now=now
        )
        self.wake_workers()
        return FreezeView.from_row(row, now)

    def freezes(self, *, include_ended: bool = False) -> list[FreezeView]:
        """Active freezes, oldest first; with ``include_ended``, all of them, newest first."""
        now = self.now()
        rows = freeze_store.list_freezes(self.db, now, include_ended=include_ended)
        return [FreezeView.from_row(r, now) for r in rows]

    def with_frozen(self, views: list[JobView]) -> list[JobView]:
        """The views, each ready job that an active freeze holds saying why it waits."""
        if not any(v.state in CLAIMABLE for v in views):
            return views
        active = self.freezes()
        if not active:
            return views
        out = []
        for v in views:
            hit = None
            if v.state in CLAIMABLE:
                job = {"team": v.team, "concurrency_key": v.concurrency_key, "tags": v.tags}
                hit = next(
                    (f for f in active if freeze_store.matches(dataclasses.asdict(f), job)), None
                )
            out.append(dataclasses.replace(v, frozen=hit.why) if hit else v)
        return out
