"""Break-glass reviews: listing them and acknowledging one. ``OpsService``'s mixin.

A break-glass run (``ApprovalsMixin.break_glass``) leaves a review that another person with
the approver role must acknowledge; until then every console shows a banner. This is the
only place that decides who may acknowledge: never the one who broke the glass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsconsole.core.errors import Forbidden, InvalidParams
from opsconsole.core.host import ServiceHost
from opsconsole.core.store import reviews as review_store
from opsconsole.core.views import iso

if TYPE_CHECKING:
    pass

MAX_COMMENT = 500


@dataclass(frozen=True)
class ReviewView:
    """One break-glass run and, once acknowledged, who acknowledged it."""

    id: int
    job_id: str
    template: str | None
    state: str | None
    broken_by: str
    reason: str
    created_at: datetime
    acked_by: str | None
    acked_at: datetime | None
    comment: str | None

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> ReviewView:
        return cls(
            id=int(r["id"]),
            job_id=r["job_id"],
            template=r.get("template"),
            state=r.get("state"),
            broken_by=r["broken_by"],
            reason=r["reason"],
            created_at=r["created_at"],
            acked_by=r["acked_by"],
            acked_at=r["acked_at"],
            comment=r["comment"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "template": self.template,
            "state": self.state,
            "broken_by": self.broken_by,
            "reason": self.reason,
            "created_at": iso(self.created_at),
            "acked_by": self.acked_by,
            "acked_at": iso(self.acked_at) if self.acked_at else None,
            "comment": self.comment,
        }


class ReviewsMixin(ServiceHost):
    def reviews(self, *, include_acked: bool = False) -> list[ReviewView]:
        """Break-glass reviews, oldest first: the open ones, or all with ``include_acked``."""
        rows = review_store.listing(self.db, include_acked=include_acked)
        return [ReviewView.from_row(r) for r in rows]

    def open_reviews(self) -> list[ReviewView]:
        """Break-glass runs nobody acknowledged yet (the consoles' banner)."""
        return self.reviews()

    def ack_review(self, review_id: int, *, comment: str) -> ReviewView:
        """Acknowledge a break-glass review as the calling OS user, with a comment.

        Needs the approver role; the one who broke the glass may not acknowledge it.
        """
        comment = (comment or "").strip()
        if not comment:
            raise InvalidParams("a comment is required: say what you checked (--comment TEXT)")
        if len(comment) > MAX_COMMENT or not comment.isprintable():
            raise InvalidParams(
                f"the comment must be at most {MAX_COMMENT} printable characters on one line"
            )
        review = ReviewView.from_row(review_store.get(self.db, review_id))
        self.authorize("review", job_id=review.job_id)
        actor = self.identity.name
        if actor == review.broken_by:
            raise Forbidden(
                f"{actor} broke the glass on job {review.job_id} and may not acknowledge its "
                f"review {review.id}: another person with the approver role must"
            )
        review_store.ack(self.db, review_id, actor=actor, comment=comment, now=self.now())
        return ReviewView.from_row(review_store.get(self.db, review_id))
