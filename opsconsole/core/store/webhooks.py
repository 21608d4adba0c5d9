"""The webhooks' rows: feed cursors, failure counts, and the transaction that turns a batch
of events into delivery jobs.

The only SQL about webhooks. A cursor moves only by a guarded UPDATE (``WHERE cursor =
:old``) in the transaction that inserts the deliveries it covers, so two processes that
dispatch at once never queue one delivery twice: the second one's update changes nothing
and its whole transaction is rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from opsconsole.core.errors import Conflict, NotFound
from opsconsole.core.ids import new_job_id
from opsconsole.core.store.db import Database, events, jobs, webhooks
from opsconsole.core.store.jobs import NO_JOB, add_event, insert_in

FEED_COLUMNS = (
    events.c.id,
    events.c.job_id,
    events.c.ts,
    events.c.kind,
    events.c.actor,
    events.c.state,
    events.c.attempt,
    events.c.message,
    events.c.data,
    jobs.c.template.label("job_template"),
    jobs.c.state.label("job_state"),
    jobs.c.submitted_by.label("job_submitted_by"),
    jobs.c.created_at.label("job_created_at"),
    jobs.c.finished_at.label("job_finished_at"),
    jobs.c.attempts.label("job_attempts"),
    jobs.c.schedule.label("job_schedule"),
    jobs.c.error.label("job_error"),
)
"""An event and the summary of its job (None for an event about no job)."""

Planner = Callable[[int, Sequence[RowMapping]], tuple[list[dict[str, Any]], int]]
"""(cursor, events after it) -> (delivery job rows without ids, the new cursor)."""


class CursorMoved(Exception):
    """Another process moved the cursor first: this transaction queued nothing."""


def ensure(db: Database, names: Iterable[str], now: datetime) -> None:
    """A row for each declared webhook; a new one starts at the newest event (it is not sent
    the store's history)."""
    wanted = list(names)
    if not wanted:
        return
    with db.read() as conn:
        have = set(
            conn.execute(sa.select(webhooks.c.name).where(webhooks.c.name.in_(wanted))).scalars()
        )
    missing = [n for n in wanted if n not in have]
    if not missing:
        return
    with db.write() as conn:
        top = conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0))).scalar_one()
        for name in missing:
            try:
                with conn.begin_nested():  # another process may have added it since
                    conn.execute(webhooks.insert().values(name=name, cursor=top, updated_at=now))
            except sa.exc.IntegrityError:
                continue


def states(db: Database) -> dict[str, RowMapping]:
    with db.read() as conn:
        return {r["name"]: r for r in conn.execute(sa.select(webhooks)).mappings()}


def newest_event(db: Database) -> int:
    with db.read() as conn:
        return conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0))).scalar_one()


def queue(db: Database, name: str, plan: Planner, *, batch: int, actor: str, now: datetime) -> int:
    """One batch for one webhook: read the events after its cursor, insert the deliveries
    ``plan`` makes of them and move the cursor, all in one transaction. Returns how many
    deliveries were queued; raises ``CursorMoved`` when another process was first."""
    try:
        with db.write() as conn:
            state = conn.execute(sa.select(webhooks).where(webhooks.c.name == name)).mappings()
            row = state.first()
            if row is None or row["disabled_at"] is not None:
                return 0
            old = row["cursor"]
            feed = list(
                conn.execute(
                    sa.select(*FEED_COLUMNS)
                    .select_from(events.outerjoin(jobs, jobs.c.id == events.c.job_id))
                    .where(events.c.id > old)
                    .order_by(events.c.id)
                    .limit(batch)
                ).mappings()
            )
            deliveries, new = plan(old, feed)
            if new == old:
                return 0
            for delivery in deliveries:
                _insert_delivery(conn, delivery, actor=actor, now=now)
            moved = conn.execute(
                webhooks.update()
                .where(webhooks.c.name == name, webhooks.c.cursor == old)
                .values(cursor=new, updated_at=now)
            ).rowcount
            if moved != 1:
                raise CursorMoved(name)
            return len(deliveries)
    except CursorMoved:
        return 0


def _insert_delivery(conn: Connection, row: dict[str, Any], *, actor: str, now: datetime) -> None:
    message = f"delivery of event {row['params']['event']} to webhook {row['params']['webhook']}"
    for _ in range(5):
        try:
            job = {**row, "id": new_job_id(), "submitted_by": actor}
            insert_in(conn, job, (), actor=actor, now=now, message=message)
            return
        except Conflict:
            continue
    raise Conflict("could not allocate a job id")  # pragma: no cover - 27^6 ids


def record_attempt(
    db: Database,
    name: str,
    *,
    ok: bool,
    status: str,
    final: bool,
    disable_after: int,
    now: datetime,
) -> bool:
    """Note one delivery attempt. A success resets the failures; a delivery whose last
    attempt failed counts one more, and the one that reaches ``disable_after`` disables the
    webhook with a ``webhook.disabled`` event (in the same transaction). True if it did."""
    with db.write() as conn:
        if ok:
            conn.execute(
                webhooks.update()
                .where(webhooks.c.name == name)
                .values(failures=0, last_delivery_at=now, last_status=status, updated_at=now)
            )
            return False
        values: dict[str, Any] = {"last_status": status, "updated_at": now}
        if final:
            values["failures"] = webhooks.c.failures + 1
        failures = conn.execute(
            webhooks.update()
            .where(webhooks.c.name == name)
            .values(**values)
            .returning(webhooks.c.failures)
        ).scalar()
        if not final or failures is None or failures < disable_after:
            return False
        reason = f"{failures} deliveries in a row failed; last: {status}"
        disabled = conn.execute(
            webhooks.update()
            .where(webhooks.c.name == name, webhooks.c.disabled_at.is_(None))
            .values(disabled_at=now, disabled_reason=reason)
        ).rowcount
        if disabled:
            add_event(
                conn,
                NO_JOB,
                "webhook.disabled",
                now,
                actor="",
                message=f"webhook {name} disabled: {reason}",
                data={"webhook": name, "failures": failures},
            )
        return bool(disabled)


def enable(db: Database, name: str, *, actor: str, now: datetime) -> bool:
    """Clear a webhook's failures and re-enable it; its cursor stays, so the events that came
    while it was disabled are delivered now. False if it was enabled already."""
    with db.write() as conn:
        row = conn.execute(sa.select(webhooks).where(webhooks.c.name == name)).mappings().first()
        if row is None:
            raise NotFound(f"webhook '{name}' has no state in the store yet")
        was_disabled = row["disabled_at"] is not None
        conn.execute(
            webhooks.update()
            .where(webhooks.c.name == name)
            .values(failures=0, disabled_at=None, disabled_reason=None, updated_at=now)
        )
        if was_disabled:
            add_event(
                conn,
                NO_JOB,
                "webhook.enabled",
                now,
                actor=actor,
                message=f"webhook {name} enabled by {actor}",
                data={"webhook": name},
            )
        return was_disabled


def pending_deliveries(db: Database, keys: Sequence[str], live: Sequence[str]) -> dict[str, int]:
    """Jobs not yet ended per concurrency key (a webhook's deliveries share one), through the
    index on (concurrency_key, state)."""
    if not keys:
        return {}
    with db.read() as conn:
        rows = conn.execute(
            sa.select(jobs.c.concurrency_key, sa.func.count())
            .where(jobs.c.concurrency_key.in_(keys), jobs.c.state.in_(live))
            .group_by(jobs.c.concurrency_key)
        ).all()
    return {key: n for key, n in rows}
