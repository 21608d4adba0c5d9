"""Break-glass reviews: the only reads of the ``reviews`` table and its only acknowledgement.

A review is opened by the break-glass decision itself (``store.approvals.break_glass``, in
the same transaction). Acknowledging it is one guarded UPDATE: of two people acknowledging
at once exactly one does, and the one who broke the glass never matches the guard.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from opsconsole.core.errors import Forbidden, InvalidTransition, NotFound
from opsconsole.core.store.db import Database, jobs, reviews
from opsconsole.core.store.jobs import add_event, fetch


def _select() -> sa.Select[tuple[object, ...]]:
    return sa.select(reviews, jobs.c.template, jobs.c.state).join(
        jobs, jobs.c.id == reviews.c.job_id, isouter=True
    )


def listing(db: Database, *, include_acked: bool = False, limit: int = 500) -> list[RowMapping]:
    """Reviews, oldest first: the open ones, or every one with ``include_acked``."""
    q = _select()
    if not include_acked:
        q = q.where(reviews.c.acked_by.is_(None))
    with db.read() as conn:
        return list(conn.execute(q.order_by(reviews.c.id).limit(limit)).mappings())


def open_count(db: Database) -> int:
    """How many break-glass runs nobody has acknowledged yet."""
    with db.read() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(reviews).where(reviews.c.acked_by.is_(None))
        ).scalar_one()


def get(db: Database, review_id: int) -> RowMapping:
    with db.read() as conn:
        row = conn.execute(_select().where(reviews.c.id == review_id)).mappings().first()
    if row is None:
        raise NotFound(f"no review {review_id} (see: opsconsole reviews list --all)")
    return row


def ack(db: Database, review_id: int, *, actor: str, comment: str, now: datetime) -> RowMapping:
    """Acknowledge a review as ``actor`` (never the one who broke the glass), with an event
    ``review_acked`` on its job in the same transaction."""
    with db.write() as conn:
        done = (
            conn.execute(
                reviews.update()
                .where(
                    reviews.c.id == review_id,
                    reviews.c.acked_by.is_(None),
                    reviews.c.broken_by != actor,
                )
                .values(acked_by=actor, acked_at=now, comment=comment)
                .returning(reviews)
            )
            .mappings()
            .first()
        )
        if done is None:
            current = (
                conn.execute(sa.select(reviews).where(reviews.c.id == review_id)).mappings().first()
            )
            if current is None:
                raise NotFound(f"no review {review_id} (see: opsconsole reviews list --all)")
            if current["acked_by"] is not None:
                raise InvalidTransition(
                    f"review {review_id} was acknowledged already by {current['acked_by']}"
                )
            raise Forbidden(
                f"{actor} broke the glass on job {current['job_id']} and may not acknowledge "
                f"its review {review_id}: another person with the approver role must"
            )
        job = fetch(conn, done["job_id"])
        add_event(
            conn,
            done["job_id"],
            "review_acked",
            now,
            actor=actor,
            state=job["state"] if job is not None else None,
            message=f"break-glass review {review_id} acknowledged by {actor}: {comment}",
            data={"review": review_id, "broken_by": done["broken_by"], "comment": comment},
        )
        return done
