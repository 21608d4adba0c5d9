"""Approval decisions: the only writes of the ``approvals`` table and of a job's gate.

Each decision is one write transaction whose first statement is an UPDATE guarded by the
job's state and gate round, so of two people deciding at once exactly one decides: the
other's guard matches no row and is refused with the state the job is in now.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from opsconsole.core.errors import Conflict, InvalidTransition, NotFound
from opsconsole.core.states import JobState, Verb
from opsconsole.core.store.db import Database, approvals, deps, jobs, reviews
from opsconsole.core.store.jobs import add_event, fetch, transition
from opsconsole.core.store.plans import discard_pending

S = JobState
V = Verb
AWAITING = S.AWAITING_APPROVAL.value


def record(
    conn: Connection,
    job_id: str,
    round_: int,
    actor: str,
    decision: str,
    comment: str,
    digest: str | None,
    now: datetime,
) -> None:
    """One decision on a round of a job's gate (approve, reject, break_glass, void): the
    approvals table is the gate's own record, read again by the worker before it runs."""
    conn.execute(
        approvals.insert().values(
            job_id=job_id,
            round=round_,
            actor=actor,
            decision=decision,
            comment=comment,
            digest=digest,
            at=now,
        )
    )


def _claim_round(
    conn: Connection, job_id: str, round_: int, now: datetime, what: str
) -> RowMapping:
    """Take the job's row for a decision on ``round_``: the guard two deciders race on."""
    row = (
        conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id, jobs.c.state == AWAITING, jobs.c.gate_round == round_)
            .values(updated_at=now)
            .returning(jobs)
        )
        .mappings()
        .first()
    )
    if row is not None:
        return row
    current = fetch(conn, job_id)
    if current is None:
        raise NotFound(f"no job {job_id}")
    if current["state"] != AWAITING:
        raise InvalidTransition(
            f"cannot {what} job {job_id}: it is {current['state']}, not awaiting approval"
        )
    raise Conflict(
        f"job {job_id} went back to awaiting approval (round {current['gate_round']}) since "
        "you looked: look at it again"
    )


def _ready_state(conn: Connection, row: Mapping[str, Any], now: datetime) -> JobState:
    unfinished = conn.execute(
        sa.select(sa.func.count())
        .select_from(deps.join(jobs, jobs.c.id == deps.c.depends_on))
        .where(deps.c.job_id == row["id"], jobs.c.state != S.SUCCEEDED.value)
    ).scalar_one()
    if unfinished:
        return S.WAITING
    return S.SCHEDULED if row["run_at"] > now else S.QUEUED


def approve(
    db: Database,
    job_id: str,
    round_: int,
    *,
    actor: str,
    digest: str,
    comment: str,
    required: int,
    now: datetime,
) -> tuple[RowMapping, int]:
    """Record ``actor``'s approval of ``digest``; open the gate at ``required`` approvals.

    Returns the job's row and how many approvals of this digest the round has. Only
    approvals of the same digest count together.
    """
    with db.write() as conn:
        row = _claim_round(conn, job_id, round_, now, "approve")
        given = conn.execute(
            sa.select(approvals.c.id).where(
                approvals.c.job_id == job_id,
                approvals.c.round == round_,
                approvals.c.actor == actor,
                approvals.c.decision == "approve",
            )
        ).first()
        if given is not None:  # the unique index stands behind this check
            raise InvalidTransition(f"{actor} already approved job {job_id}")
        record(conn, job_id, round_, actor, "approve", comment, digest, now)
        count = conn.execute(
            sa.select(sa.func.count(sa.distinct(approvals.c.actor))).where(
                approvals.c.job_id == job_id,
                approvals.c.round == round_,
                approvals.c.decision == "approve",
                approvals.c.digest == digest,
            )
        ).scalar_one()
        data = {"round": round_, "digest": digest, "approvals": count, "required": required}
        said = f"approved by {actor} ({count} of {required})" + (f": {comment}" if comment else "")
        if count < required:
            add_event(
                conn,
                job_id,
                "approval_added",
                now,
                actor=actor,
                state=AWAITING,
                message=said,
                data=data,
            )
            return row, count
        opened = transition(
            conn,
            job_id,
            _ready_state(conn, row, now),
            now,
            verb=V.APPROVE,
            actor=actor,
            message=said,
            values={"approved_digest": digest, "approval_expires_at": None},
            data=data,
        )
        assert opened is not None  # the round's guard holds the row
        return opened, count


def reject(
    db: Database,
    job_id: str,
    round_: int,
    *,
    actor: str,
    reason: str,
    now: datetime,
    expired: bool = False,
    withdrawn: bool = False,
) -> RowMapping:
    """End a gated job ``rejected`` with ``reason`` (``expired`` when nobody answered,
    ``withdrawn`` when its submitter took the request back)."""
    decision = "expire" if expired else "withdraw" if withdrawn else "reject"
    with db.write() as conn:
        _claim_round(conn, job_id, round_, now, decision)
        record(conn, job_id, round_, actor, decision, reason, None, now)
        kind = "expired" if expired else "withdrawn" if withdrawn else "rejected"
        out = transition(
            conn,
            job_id,
            S.REJECTED,
            now,
            verb=V.REJECT,
            kind=kind,
            actor=actor,
            message=reason,
            values={"error": {"message": reason, "kind": kind, "detail": {"by": actor}}},
            data={"round": round_, "reason": reason},
        )
        assert out is not None
        discard_pending(conn, job_id, now)  # a Terraform job's plan will never be applied
        return out


def break_glass(
    db: Database,
    job_id: str,
    round_: int,
    *,
    actor: str,
    digest: str,
    reason: str,
    now: datetime,
) -> tuple[RowMapping, int]:
    """Open a gated job's gate now, without approvals: the job is marked ``break_glass``,
    the decision names ``digest`` (so the worker's check lets exactly this run) and a review
    is opened for another person to acknowledge. Returns the job's row and the review's id.
    """
    with db.write() as conn:
        row = _claim_round(conn, job_id, round_, now, "break the glass on")
        record(conn, job_id, round_, actor, "break_glass", reason, digest, now)
        review_id = conn.execute(
            reviews.insert().values(job_id=job_id, broken_by=actor, reason=reason, created_at=now)
        ).inserted_primary_key[0]
        opened = transition(
            conn,
            job_id,
            _ready_state(conn, row, now),
            now,
            verb=V.BREAK_GLASS,
            actor=actor,
            message=f"break-glass by {actor}: {reason} (review {review_id} awaits another "
            "person's acknowledgement)",
            values={"approved_digest": digest, "approval_expires_at": None, "break_glass": True},
            data={"round": round_, "digest": digest, "reason": reason, "review": review_id},
        )
        assert opened is not None  # the round's guard holds the row
        return opened, int(review_id)


def _voided(job_id: str, round_: int) -> Any:
    """Whether anything voided round ``round_`` of the job's gate (a change after approval)."""
    return (
        sa.select(approvals.c.id)
        .where(
            approvals.c.job_id == job_id,
            approvals.c.round == round_,
            approvals.c.decision == "void",
        )
        .exists()
    )


def broke_glass(db: Database, job_id: str, round_: int, digest: str) -> bool:
    """Did someone break the glass for ``digest`` in round ``round_`` (and nothing void it)?"""
    with db.read() as conn:
        voided = _voided(job_id, round_)
        found = conn.execute(
            sa.select(approvals.c.id).where(
                approvals.c.job_id == job_id,
                approvals.c.round == round_,
                approvals.c.decision == "break_glass",
                approvals.c.digest == digest,
                ~voided,
            )
        ).first()
        return found is not None


def _void(conn: Connection, job_id: str, round_: int, why: str, actor: str, now: datetime) -> int:
    given = conn.execute(
        sa.select(approvals.c.actor, approvals.c.digest).where(
            approvals.c.job_id == job_id,
            approvals.c.round == round_,
            approvals.c.decision == "approve",
        )
    ).all()
    for who, digest in given:
        record(conn, job_id, round_, actor, "void", f"{who}'s approval: {why}", digest, now)
    return len(given)


def void_round(
    db: Database,
    job_id: str,
    round_: int,
    *,
    why: str,
    expires_at: datetime,
    actor: str,
    now: datetime,
    values: Mapping[str, Any] | None = None,
) -> RowMapping:
    """Void the approvals of a job still awaiting approval and start a new round."""
    with db.write() as conn:
        _claim_round(conn, job_id, round_, now, "approve")
        voided = _void(conn, job_id, round_, why, actor, now)
        row = (
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(
                    gate_round=round_ + 1,
                    approval_expires_at=expires_at,
                    approved_digest=None,
                    **(values or {}),
                )
                .returning(jobs)
            )
            .mappings()
            .one()
        )
        add_event(
            conn,
            job_id,
            "approval_void",
            now,
            actor=actor,
            state=AWAITING,
            message=f"{voided} approval(s) void: {why}; approval round {round_ + 1}",
            data={"round": round_, "why": why},
        )
        return row


def refuse_run(
    db: Database,
    job_id: str,
    attempt: int,
    *,
    why: str,
    expiry_s: float,
    actor: str,
    now: datetime,
    values: Mapping[str, Any] | None = None,
) -> RowMapping | None:
    """Hand a claimed gated job back to ``awaiting_approval`` (a new round): it may not run.

    The ``park`` move, fenced by the attempt the worker claimed; the event is ``refused``.
    None when the attempt was fenced off already.
    """
    with db.write() as conn:
        current = fetch(conn, job_id)
        if current is None:
            return None
        round_ = int(current["gate_round"])
        voided = _void(conn, job_id, round_, why, actor, now)
        return transition(
            conn,
            job_id,
            S.AWAITING_APPROVAL,
            now,
            verb=V.PARK,
            kind="refused",
            actor=actor,
            attempt=attempt,
            message=f"refused to run: {why}; {voided} approval(s) void; "
            f"approval round {round_ + 1}",
            values={
                "gate_round": round_ + 1,
                "approval_expires_at": now + timedelta(seconds=expiry_s),
                "approved_digest": None,
                "worker": None,
                "lease_until": None,
                "pid": None,
                **(values or {}),
            },
            data={"round": round_, "why": why},
        )


def matching(db: Database, job_id: str, round_: int, digest: str) -> int:
    """How many people approved ``digest`` in round ``round_`` (void approvals do not count)."""
    with db.read() as conn:
        voided = _voided(job_id, round_)
        return conn.execute(
            sa.select(sa.func.count(sa.distinct(approvals.c.actor))).where(
                approvals.c.job_id == job_id,
                approvals.c.round == round_,
                approvals.c.decision == "approve",
                approvals.c.digest == digest,
                ~voided,
            )
        ).scalar_one()


def decisions(db: Database, job_id: str) -> list[RowMapping]:
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(approvals).where(approvals.c.job_id == job_id).order_by(approvals.c.id)
            ).mappings()
        )


def awaiting(db: Database, limit: int = 500) -> list[RowMapping]:
    """Jobs awaiting approval, oldest first."""
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(jobs)
                .where(jobs.c.state == AWAITING)
                .order_by(jobs.c.created_at, jobs.c.id)
                .limit(limit)
            ).mappings()
        )


def approval_counts(db: Database, ids: list[str]) -> dict[tuple[str, int], int]:
    """Approvals given so far, by (job, round)."""
    if not ids:
        return {}
    with db.read() as conn:
        rows = conn.execute(
            sa.select(approvals.c.job_id, approvals.c.round, sa.func.count())
            .where(approvals.c.job_id.in_(ids), approvals.c.decision == "approve")
            .group_by(approvals.c.job_id, approvals.c.round)
        ).all()
    return {(j, r): n for j, r, n in rows}


def expired(db: Database, now: datetime, limit: int = 100) -> list[tuple[str, int]]:
    """(job, round) of requests nobody answered before their expiry."""
    with db.read() as conn:
        return [
            (r.id, r.gate_round)
            for r in conn.execute(
                sa.select(jobs.c.id, jobs.c.gate_round)
                .where(jobs.c.state == AWAITING, jobs.c.approval_expires_at <= now)
                .limit(limit)
            )
        ]
