"""Read-side queries: id prefixes, filtered paged listings, locks, stats, retention.

Listings are paged in SQL and served by indexes; nothing here loads a whole table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from opsconsole.core.errors import Conflict, NotFound
from opsconsole.core.states import FINAL, LIVE, JobState
from opsconsole.core.store.db import Database, jobs, one_of
from opsconsole.core.store.jobs import dependencies_of, fetch

S = JobState


def resolve(db: Database, ref: str) -> str:
    """A full id from a unique prefix; NotFound or Conflict (ambiguous) otherwise."""
    ref = ref.strip().lower()
    if not ref or not ref.isalnum() or len(ref) > 16:
        raise NotFound(f"no job matches '{ref[:20]}'")
    with db.read() as conn:
        if conn.execute(sa.select(jobs.c.id).where(jobs.c.id == ref)).first():
            return ref
        found = (
            conn.execute(
                sa.select(jobs.c.id).where(jobs.c.id.startswith(ref, autoescape=True)).limit(4)
            )
            .scalars()
            .all()
        )
    if not found:
        raise NotFound(f"no job matches '{ref}'")
    if len(found) > 1:
        raise Conflict(f"'{ref}' matches several jobs ({', '.join(found[:3])}, ...): type more")
    return found[0]


def get(db: Database, job_id: str) -> tuple[RowMapping, list[str]]:
    with db.read() as conn:
        row = fetch(conn, job_id)
        if row is None:
            raise NotFound(f"no job '{job_id}'")
        return row, dependencies_of(conn, job_id)


@dataclass(frozen=True)
class JobFilter:
    states: tuple[str, ...] = ()
    template: str | None = None
    tag: str | None = None
    since: datetime | None = None
    text: str | None = None
    team: str | None = None


def _where(f: JobFilter) -> list[Any]:
    cond: list[Any] = []
    if f.states:
        cond.append(jobs.c.state.in_(list(f.states)))
    if f.template:
        cond.append(jobs.c.template == f.template)
    if f.tag:
        cond.append(jobs.c.tags.contains(f",{f.tag},", autoescape=True))
    if f.since is not None:
        cond.append(jobs.c.created_at >= f.since)
    if f.team:
        cond.append(jobs.c.team == f.team)
    if f.text:
        like = f.text.lower()
        cond.append(
            sa.or_(
                jobs.c.id.startswith(like, autoescape=True),
                jobs.c.template.contains(like, autoescape=True),
                jobs.c.tags.contains(like, autoescape=True),
            )
        )
    return cond


def list_jobs(
    db: Database, f: JobFilter, *, page: int, page_size: int
) -> tuple[list[RowMapping], int]:
    """One page, newest first, and the total that matches.

    The order (created_at, id) is an index's (``ix_jobs_created``; with a template
    ``ix_jobs_template``): a page reads its rows and the ones before it along that index.
    With states (and no template) the states' rows are found by ``ix_jobs_claim`` and
    sorted: a (state, created_at) index would win the claim's statement on SQLite.
    """
    cond = _where(f)
    with db.read() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(jobs).where(*cond)).scalar_one()
        rows = list(
            conn.execute(
                sa.select(jobs)
                .where(*cond)
                .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
                .limit(page_size)
                .offset((page - 1) * page_size)
            ).mappings()
        )
    return rows, total


_LIVE = tuple(sorted(s.value for s in LIVE))
_FINAL = tuple(sorted(s.value for s in FINAL))


def _state_in(db: Database, values: tuple[str, ...]) -> Any:
    """``state IN values``; on SQLite written so that its planner never picks the state
    index for it (without statistics it would: that index holds every finished job ever,
    while a time range or a template narrows far more; the condition is still checked, from
    whichever index holds ``state``). PostgreSQL's planner weighs it from statistics."""
    if db.dialect == "sqlite":
        return one_of(sa.func.lower(jobs.c.state), values)
    return one_of(jobs.c.state, values)


def counts_by_state(
    db: Database, since: datetime | None = None, team: str | None = None
) -> dict[str, int]:
    """Jobs per state; with ``since``, live jobs and the others created since then.

    With ``since`` it is two bounded reads: the live jobs by ``ix_jobs_claim`` (state
    first), the others by the time range of ``ix_jobs_created``.
    """
    who = [] if team is None else [jobs.c.team == team]
    count = sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)
    with db.read() as conn:
        if since is None:
            return {state: n for state, n in conn.execute(count.where(*who))}
        out = {state: n for state, n in conn.execute(count.where(jobs.c.state.in_(_LIVE), *who))}
        # the time range of ix_jobs_created (every state is live or final); grouped by
        # ``lower(state)`` (states are lower case) so that no planner walks ix_jobs_claim
        # whole for its order by state
        key = sa.func.lower(jobs.c.state)
        done = (
            sa.select(key, sa.func.count(jobs.c.id))
            .where(_state_in(db, _FINAL), jobs.c.created_at >= since, *who)
            .group_by(key)
        )
        for state, n in conn.execute(done):
            out[state] = out.get(state, 0) + n
        return out


def _duration(db: Database) -> Any:
    """A run's seconds, the very expression ``ix_jobs_durations`` (migration 0008) indexes."""
    return sa.literal_column(DURATION[db.dialect])


DURATION = {
    "sqlite": "(julianday(finished_at) - julianday(started_at)) * 86400.0",
    "postgresql": "extract(epoch from (finished_at - started_at))",
}
"""Must stay the same text as migration 0008's: a planner uses an expression index only
for the same expression."""


@dataclass
class TemplateStats:
    template: str
    runs: int
    succeeded: int
    partial: int
    failed: int
    """Runs that ended neither succeeded nor partial (failed, timed out, cancelled, ...)."""
    p50_s: float | None
    p95_s: float | None
    recent: list[str] = field(default_factory=list)
    """Final states of the most recent runs, oldest first (for a sparkline)."""


_TEMPLATES = (
    sa.text(
        "WITH RECURSIVE t(name) AS ("
        " SELECT min(template) FROM jobs"
        " UNION ALL SELECT (SELECT min(template) FROM jobs WHERE template > t.name)"
        " FROM t WHERE t.name IS NOT NULL"
        ") SELECT name FROM t WHERE name IS NOT NULL"
    )
    .columns(name=sa.String)
    .compile()
)
"""Every template that has jobs, one index seek each (``ix_jobs_template``): no scan."""


def template_names(db: Database) -> list[str]:
    with db.read() as conn:
        return list(conn.execute(sa.text(str(_TEMPLATES))).scalars())


def template_stats(
    db: Database, since: datetime | None, recent: int = 20, team: str | None = None
) -> list[TemplateStats]:
    """Per template with runs (finished jobs that started): outcomes, p50/p95 run time and
    the final states of the latest ``recent`` runs, of the runs finished since ``since``.

    Each figure is read per template from an index, never by sorting the whole table:
    counts without ``since`` as ranges of ``ix_jobs_template_state``; counts with it and
    recent runs from ``ix_jobs_template_finished`` (template, finished_at, ...,
    state, started_at: within the ``since`` window only); the percentiles without ``since``
    by stepping k entries along ``ix_jobs_durations`` (template, run seconds, state), with
    ``since`` by sorting that template's runs in the window. A percentile is the k-th
    smallest run time, k = round(p * (runs - 1)), as it always was.
    """
    dur = _duration(db)
    out: list[TemplateStats] = []
    for template in template_names(db):
        cond = [jobs.c.template == template, _state_in(db, _FINAL), jobs.c.started_at.is_not(None)]
        if team is not None:
            cond.append(jobs.c.team == team)
        if since is not None:
            cond.append(jobs.c.finished_at >= since)
        with db.read() as conn:
            if since is None:
                # each final state's range of ix_jobs_template_state: counted, not evaluated
                by_state = dict(
                    conn.execute(
                        sa.select(jobs.c.state, sa.func.count())
                        .where(*[c for c in cond if c is not cond[1]], jobs.c.state.in_(_FINAL))
                        .group_by(jobs.c.state)
                    ).all()
                )
                runs = sum(by_state.values())
                ok = by_state.get(S.SUCCEEDED.value, 0)
                part = by_state.get(S.PARTIAL.value, 0)
            else:
                runs, ok, part = conn.execute(
                    sa.select(
                        sa.func.count(),
                        sa.func.sum(sa.case((jobs.c.state == S.SUCCEEDED.value, 1), else_=0)),
                        sa.func.sum(sa.case((jobs.c.state == S.PARTIAL.value, 1), else_=0)),
                    ).where(*cond)
                ).one()
            if not runs:
                continue
            if since is None:
                # ordered by the indexed expression itself: a walk along ix_jobs_durations
                runs_of = sa.select(dur).where(
                    *[c for c in cond if c is not cond[2]], dur.is_not(None)
                )
                key = dur
            else:
                # the window is small next to the template's history: sort just the window
                # (``+ 0`` keeps a planner from walking the template's whole durations index)
                runs_of = sa.select(dur).where(*cond)
                key = dur + 0

            def pct(
                p: float, runs_of: Any = runs_of, key: Any = key, runs: int = runs
            ) -> float | None:
                """The k-th smallest run time; past the middle, the (runs-1-k)-th largest
                (the same run, reached from the nearer end: a p95 walks 5% of the runs)."""
                k = min(runs - 1, max(0, round(p * (runs - 1))))
                if k <= (runs - 1) // 2:
                    found = runs_of.order_by(key).limit(1).offset(k)
                else:
                    found = runs_of.order_by(key.desc()).limit(1).offset(runs - 1 - k)
                v = conn.execute(found).scalar()
                return None if v is None else round(float(v), 3)

            last = (
                conn.execute(
                    sa.select(jobs.c.state)
                    .where(*cond)
                    .order_by(jobs.c.finished_at.desc(), jobs.c.id.desc())
                    .limit(recent)
                )
                .scalars()
                .all()
            )
            out.append(
                TemplateStats(
                    template=template,
                    runs=runs,
                    succeeded=int(ok or 0),
                    partial=int(part or 0),
                    failed=runs - int(ok or 0) - int(part or 0),
                    p50_s=pct(0.5),
                    p95_s=pct(0.95),
                    recent=list(reversed(last)),
                )
            )
    return out


def lock_rows(db: Database, limit: int = 5000) -> list[RowMapping]:
    """Live jobs that carry a concurrency key: holders first, then waiters in claim order."""
    live = [s.value for s in LIVE]
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(
                    jobs.c.id,
                    jobs.c.template,
                    jobs.c.state,
                    jobs.c.concurrency_key,
                    jobs.c.concurrency_limit,
                    jobs.c.priority,
                    jobs.c.created_at,
                    jobs.c.started_at,
                    jobs.c.worker,
                    jobs.c.run_at,
                )
                .where(jobs.c.concurrency_key.is_not(None), jobs.c.state.in_(live))
                .order_by(
                    jobs.c.concurrency_key,
                    sa.case((jobs.c.state == S.RUNNING.value, 0), else_=1),
                    jobs.c.priority.desc(),
                    jobs.c.created_at,
                )
                .limit(limit)
            ).mappings()
        )


def ping(db: Database) -> None:
    with db.read() as conn:
        conn.execute(sa.text("SELECT 1"))


# -- the console's board: queue, running, history -------------------------------------


def queue_rows(db: Database, limit: int) -> list[RowMapping]:
    """Live jobs that are not running, in claim order (priority, then age)."""
    pending = [S.AWAITING_APPROVAL.value, S.WAITING.value, S.SCHEDULED.value, S.QUEUED.value]
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(jobs)
                .where(jobs.c.state.in_(pending))
                .order_by(jobs.c.priority.desc(), jobs.c.created_at, jobs.c.id)
                .limit(limit)
            ).mappings()
        )


def running_rows(db: Database, limit: int) -> list[RowMapping]:
    """Running jobs, longest running first.

    Jobs started by one claim share their ``started_at``; they keep the order they were
    claimed in (priority, then age), not the order of their random ids.
    """
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(jobs)
                .where(jobs.c.state == S.RUNNING.value)
                .order_by(jobs.c.started_at, jobs.c.priority.desc(), jobs.c.created_at, jobs.c.id)
                .limit(limit)
            ).mappings()
        )


def history_rows(
    db: Database, f: JobFilter, *, before: tuple[datetime, str] | None, limit: int
) -> list[RowMapping]:
    """Finished jobs, newest first, keyset-paged by (finished_at, id): no OFFSET scans.

    Read backwards along ``ix_jobs_history`` (finished_at, id), or with a template along
    ``ix_jobs_template_finished``: every page, the last one too, reads its own rows only.
    """
    cond = [*_where(f), _state_in(db, _FINAL), jobs.c.finished_at.is_not(None)]
    if before is not None:
        at, job_id = before
        cond.append(
            sa.or_(jobs.c.finished_at < at, sa.and_(jobs.c.finished_at == at, jobs.c.id < job_id))
        )
        # the same, as a range a planner starts the index walk at (the OR alone is not one:
        # the last page would walk the whole index from the newest end)
        cond.append(jobs.c.finished_at <= at)
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(jobs)
                .where(*cond)
                .order_by(jobs.c.finished_at.desc(), jobs.c.id.desc())
                .limit(limit)
            ).mappings()
        )


def rows_by_id(db: Database, ids: list[str]) -> list[RowMapping]:
    if not ids:
        return []
    with db.read() as conn:
        return list(conn.execute(sa.select(jobs).where(jobs.c.id.in_(ids))).mappings())


# -- bulk actions: the matching ids --------------------------------------------------------


def bulk_query(f: JobFilter, limit: int) -> sa.Select[Any]:
    """The ids a bulk action acts on, oldest first, at most ``limit``.

    ``f.states`` is never empty here (a verb acts from known states), so the state index
    (``ix_jobs_claim``) or, with a template, ``ix_jobs_template`` serves it: no table scan.
    A running job whose cancellation is already asked for is not selected again.
    """
    return (
        sa.select(jobs.c.id)
        .where(
            *_where(f),
            sa.not_(sa.and_(jobs.c.state == S.RUNNING.value, jobs.c.cancel_requested.is_(True))),
        )
        .order_by(jobs.c.created_at, jobs.c.id)
        .limit(limit)
    )


def bulk_ids(db: Database, f: JobFilter, limit: int) -> list[str]:
    if not f.states:
        raise ValueError("a bulk selection needs the states its verb acts from")
    with db.read() as conn:
        return list(conn.execute(bulk_query(f, limit)).scalars())


# -- the console: counts without a scan of history, History from its far end ---------------

LIVE_COUNTS = (
    sa.select(jobs.c.state, sa.func.count())
    .where(jobs.c.state.in_(sorted(s.value for s in LIVE)))
    .group_by(jobs.c.state)
)
"""Live jobs per state: a range of the state index (``ix_jobs_claim``), never history."""


def live_counts_by_state(db: Database) -> dict[str, int]:
    with db.read() as conn:
        return {state: n for state, n in conn.execute(LIVE_COUNTS)}


def history_rows_after(
    db: Database, f: JobFilter, *, after: tuple[datetime, str] | None, limit: int
) -> list[RowMapping]:
    """Finished jobs, OLDEST first, keyset-paged by (finished_at, id) from ``after``
    (None: from the oldest). The console's History reads its far end and the rows above a
    window it has scrolled away from with it; ``history_rows`` is the same walk downwards.
    """
    cond = [*_where(f), _state_in(db, _FINAL), jobs.c.finished_at.is_not(None)]
    if after is not None:
        at, job_id = after
        cond.append(
            sa.or_(jobs.c.finished_at > at, sa.and_(jobs.c.finished_at == at, jobs.c.id > job_id))
        )
        cond.append(jobs.c.finished_at >= at)  # where the index walk starts (as history_rows)
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(jobs).where(*cond).order_by(jobs.c.finished_at, jobs.c.id).limit(limit)
            ).mappings()
        )
