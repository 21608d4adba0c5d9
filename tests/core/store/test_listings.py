"""Listings and stats at scale: the same answers as a computation from the rows, read through
indexes (the plans are checked: no scan of ``jobs``, no sort of the whole table).

Timings are not asserted here; ``bench/store_bench.py`` measures them at a million jobs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from opsconsole.core.clock import SettableClock
from opsconsole.core.states import FINAL, LIVE
from opsconsole.core.store import queries
from opsconsole.core.store.db import Database, jobs

TEMPLATES = ("alpha", "beta", "gamma")
FINALS = sorted(s.value for s in FINAL)
LIVES = sorted(s.value for s in LIVE)


@pytest.fixture
def history(db: Database, clock: SettableClock) -> list[dict[str, Any]]:
    """A few hundred jobs: most finished (some at the very same instant, some cancelled
    before they started), some live, two teams; durations in whole milliseconds."""
    rng = random.Random(13)
    now = clock.now()
    same = now - timedelta(hours=3)
    rows: list[dict[str, Any]] = []
    for i in range(400):
        template = rng.choice(TEMPLATES)
        created = now - timedelta(seconds=rng.randint(60, 3 * 86400))
        state = rng.choice(FINALS + ["succeeded"] * 6 + LIVES)
        started: datetime | None = created + timedelta(milliseconds=rng.randint(0, 5000))
        finished: datetime | None = started + timedelta(milliseconds=rng.randint(1, 90_000))
        if state in LIVES:
            started = started if state == "running" else None
            finished = None
        elif state == "cancelled" and i % 3 == 0:
            started = None  # cancelled while it waited: a final job that never ran
        if finished is not None and i % 25 == 0:
            finished = same  # ties on finish time: the id orders them
            started = same - timedelta(milliseconds=rng.randint(1, 9000))
        rows.append(
            {
                "id": f"j{i:05d}",
                "template": template,
                "state": state,
                "params": {},
                "spec": {},
                "run_at": created,
                "depends_on": [],
                "tags": ",nightly," if i % 4 == 0 else ",",
                "submitted_by": "tester",
                "team": "red" if template == "alpha" or i % 5 == 0 else None,
                "created_at": created,
                "updated_at": finished or created,
                "started_at": started,
                "finished_at": finished,
            }
        )
    with db.write() as conn:
        conn.execute(jobs.insert(), rows)
    return rows


def _final_runs(
    rows: list[dict[str, Any]], since: datetime | None, team: str | None
) -> list[dict[str, Any]]:
    return [
        r
        for r in rows
        if r["state"] in FINALS
        and r["started_at"] is not None
        and (since is None or r["finished_at"] >= since)
        and (team is None or r["team"] == team)
    ]


def expected_stats(
    rows: list[dict[str, Any]], since: datetime | None, team: str | None
) -> list[queries.TemplateStats]:
    """``stats`` per template, computed from the rows in Python."""
    out = []
    for template in sorted(TEMPLATES):
        runs = [r for r in _final_runs(rows, since, team) if r["template"] == template]
        if not runs:
            continue
        secs = sorted((r["finished_at"] - r["started_at"]).total_seconds() for r in runs)

        def pct(p: float, secs: list[float] = secs) -> float:
            return round(secs[min(len(secs) - 1, max(0, round(p * (len(secs) - 1))))], 3)

        latest = sorted(runs, key=lambda r: (r["finished_at"], r["id"]), reverse=True)[:20]
        ok = sum(r["state"] == "succeeded" for r in runs)
        part = sum(r["state"] == "partial" for r in runs)
        out.append(
            queries.TemplateStats(
                template=template,
                runs=len(runs),
                succeeded=ok,
                partial=part,
                failed=len(runs) - ok - part,
                p50_s=pct(0.5),
                p95_s=pct(0.95),
                recent=[r["state"] for r in reversed(latest)],
            )
        )
    return out


@pytest.mark.parametrize("window", [None, timedelta(hours=30)])
@pytest.mark.parametrize("team", [None, "red"])
def test_stats_are_the_figures_computed_from_the_rows(
    db: Database,
    clock: SettableClock,
    history: list[dict[str, Any]],
    window: timedelta | None,
    team: str | None,
) -> None:
    since = None if window is None else clock.now() - window
    assert queries.template_stats(db, since, team=team) == expected_stats(history, since, team)


@pytest.mark.parametrize("window", [None, timedelta(hours=30)])
def test_counts_by_state_are_the_live_jobs_and_the_others_created_since(
    db: Database, clock: SettableClock, history: list[dict[str, Any]], window: timedelta | None
) -> None:
    since = None if window is None else clock.now() - window
    for team in (None, "red"):
        want: dict[str, int] = {}
        for r in history:
            if team is not None and r["team"] != team:
                continue
            if since is None or r["state"] in LIVES or r["created_at"] >= since:
                want[r["state"]] = want.get(r["state"], 0) + 1
        assert queries.counts_by_state(db, since, team) == want


@pytest.mark.parametrize(
    "f",
    [queries.JobFilter(), queries.JobFilter(template="beta"), queries.JobFilter(tag="nightly")],
    ids=["all", "template", "tag"],
)
def test_history_pages_hold_every_finished_job_once_newest_first(
    db: Database, history: list[dict[str, Any]], f: queries.JobFilter
) -> None:
    want = sorted(
        (
            r
            for r in history
            if r["state"] in FINALS
            and (f.template is None or r["template"] == f.template)
            and (f.tag is None or f",{f.tag}," in r["tags"])
        ),
        key=lambda r: (r["finished_at"], r["id"]),
        reverse=True,
    )
    got: list[str] = []
    before = None
    while True:
        page = queries.history_rows(db, f, before=before, limit=7)
        got += [r["id"] for r in page]
        if len(page) < 7:
            break
        before = (page[-1]["finished_at"], page[-1]["id"])
    assert got == [r["id"] for r in want]


@pytest.mark.parametrize(
    "f",
    [
        queries.JobFilter(),
        queries.JobFilter(states=("succeeded",)),
        queries.JobFilter(states=("failed", "queued")),
        queries.JobFilter(template="gamma"),
        queries.JobFilter(team="red"),
        queries.JobFilter(since=None, text="j001"),
    ],
    ids=["all", "state", "states", "template", "team", "text"],
)
def test_job_list_pages_are_newest_first_with_the_total(
    db: Database, history: list[dict[str, Any]], f: queries.JobFilter
) -> None:
    want = sorted(
        (
            r
            for r in history
            if (not f.states or r["state"] in f.states)
            and (f.template is None or r["template"] == f.template)
            and (f.team is None or r["team"] == f.team)
            and (f.text is None or r["id"].startswith(f.text))
        ),
        key=lambda r: (r["created_at"], r["id"]),
        reverse=True,
    )
    got: list[str] = []
    page = 1
    while True:
        rows, total = queries.list_jobs(db, f, page=page, page_size=9)
        assert total == len(want)
        got += [r["id"] for r in rows]
        if len(rows) < 9:
            break
        page += 1
    assert got == [r["id"] for r in want]


# -- the plans ---------------------------------------------------------------------------


@pytest.fixture
def statements(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the store runs while the test runs, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", note)
    yield seen
    event.remove(db.engine, "before_cursor_execute", note)


def sqlite_plans(db: Database, seen: list[tuple[str, Any]]) -> list[list[str]]:
    with db.read() as conn:
        return [
            [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
            for sql, params in seen
        ]


def _reads(db: Database, clock: SettableClock) -> dict[str, Callable[[], Any]]:
    since = clock.now() - timedelta(hours=30)
    last = (clock.now() - timedelta(days=1), "j00100")
    return {
        "history": lambda: queries.history_rows(db, queries.JobFilter(), before=None, limit=50),
        "history next": lambda: queries.history_rows(
            db, queries.JobFilter(), before=last, limit=50
        ),
        "history template": lambda: queries.history_rows(
            db, queries.JobFilter(template="beta"), before=last, limit=50
        ),
        "history oldest": lambda: queries.history_rows_after(
            db, queries.JobFilter(), after=None, limit=50
        ),
        "history after": lambda: queries.history_rows_after(
            db, queries.JobFilter(), after=last, limit=50
        ),
        "list state": lambda: queries.list_jobs(
            db, queries.JobFilter(states=("failed",)), page=2, page_size=20
        ),
        "list template": lambda: queries.list_jobs(
            db, queries.JobFilter(template="alpha"), page=1, page_size=20
        ),
        "list since": lambda: queries.list_jobs(
            db, queries.JobFilter(since=since), page=1, page_size=20
        ),
        "stats": lambda: queries.template_stats(db, None),
        "stats since": lambda: queries.template_stats(db, since),
        "counts since": lambda: queries.counts_by_state(db, since),
        "queue": lambda: queries.queue_rows(db, 100),
        "running": lambda: queries.running_rows(db, 100),
    }


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    "read",
    [
        "history",
        "history next",
        "history template",
        "history oldest",
        "history after",
        "list state",
        "list template",
        "list since",
        "stats",
        "stats since",
        "counts since",
        "queue",
        "running",
    ],
)
def test_listings_and_stats_read_through_an_index_never_a_scan_or_a_whole_sort(
    db: Database,
    clock: SettableClock,
    history: list[dict[str, Any]],
    statements: list[tuple[str, Any]],
    read: str,
) -> None:
    _reads(db, clock)[read]()
    seen = list(statements)
    assert seen
    for (sql, _), steps in zip(seen, sqlite_plans(db, seen), strict=True):
        assert not any(s.startswith("SCAN jobs") for s in steps), (sql, steps)
        if read.startswith("history") or read in ("list template", "list since", "stats"):
            # pages and the percentile walks follow an index's order: nothing is sorted
            assert not any("TEMP B-TREE" in s for s in steps), (sql, steps)


@pytest.mark.sqlite_only
def test_the_percentiles_walk_the_durations_index_and_history_its_finish_index(
    db: Database, clock: SettableClock, history: list[dict[str, Any]], statements: list[Any]
) -> None:
    reads = _reads(db, clock)
    reads["stats"]()
    plans = [" ".join(p) for p in sqlite_plans(db, statements)]
    assert any("COVERING INDEX ix_jobs_durations" in p for p in plans), plans
    statements.clear()
    reads["history"]()
    assert "ix_jobs_history" in " ".join(sqlite_plans(db, statements)[0])
    statements.clear()
    reads["history next"]()  # a later page starts its walk at its key, not at the newest
    plan = " ".join(sqlite_plans(db, statements)[0])
    assert "ix_jobs_history (" in plan and "finished_at<?)" in plan, plan
    statements.clear()
    reads["history template"]()
    plan = " ".join(sqlite_plans(db, statements)[0])
    assert "ix_jobs_template_finished (template=? AND" in plan and "finished_at<?)" in plan, plan


def test_on_postgresql_the_same_reads_can_be_served_by_indexes(
    db: Database,
    clock: SettableClock,
    history: list[dict[str, Any]],
    statements: list[Any],
    store_backend: str,
) -> None:
    """A few hundred rows make a scan and a sort cheapest; with both priced out the planner
    must still find an index for each read, one that gives History, a state's job list and
    the percentile walks their order (a plan that keeps a Sort has no such index)."""
    if store_backend != "postgresql":
        pytest.skip("about PostgreSQL's planner (SQLite's plans are checked above)")
    reads = _reads(db, clock)
    for name in ("history", "history next", "history template", "list state", "stats"):
        statements.clear()
        reads[name]()
        seen = [(sql, params) for sql, params in statements if "LIMIT" in sql.upper()]
        assert seen
        plans = []
        with db.read() as conn:
            for off in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                conn.exec_driver_sql(f"SET LOCAL {off} = off")
            for sql, params in seen:
                plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params))
                assert "Seq Scan on jobs" not in plan, (name, sql, plan)
                assert "Sort" not in plan, (name, sql, plan)
                plans.append(plan)
        if name == "stats":
            assert any("ix_jobs_durations" in p for p in plans), plans


def test_a_store_with_jobs_upgrades_to_the_listing_indexes(
    tmp_path: Any, store_backend: str, request: pytest.FixtureRequest
) -> None:
    """Migration 0008 on a store that already holds jobs (SQLite and PostgreSQL): the
    indexes are built over the rows, and the listings read them."""
    from alembic import command
    from alembic.config import Config

    from opsconsole.core.store.db import SCHEMA_REVISION

    if store_backend == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'old.db'}"
    db = Database(url)
    try:
        cfg = Config()
        cfg.set_main_option(
            "script_location", str(Path(queries.__file__).parents[2] / "migrations")
        )
        with db.write() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0007")
        now = datetime.now(UTC)
        rows = [
            {
                "id": f"old{i:03d}",
                "template": "alpha" if i % 2 else "beta",
                "state": "succeeded" if i % 3 else "failed",
                "params": {},
                "spec": {},
                "run_at": now,
                "depends_on": [],
                "submitted_by": "tester",
                "created_at": now - timedelta(minutes=i),
                "updated_at": now,
                "started_at": now - timedelta(minutes=i),
                "finished_at": now - timedelta(minutes=i) + timedelta(seconds=i + 1),
            }
            for i in range(30)
        ]
        with db.write() as conn:
            conn.execute(jobs.insert(), rows)
        assert db.current_revision() == "0007"
        db.ensure_schema()
        assert db.current_revision() == SCHEMA_REVISION
        page = queries.history_rows(db, queries.JobFilter(), before=None, limit=5)
        assert [r["id"] for r in page] == ["old000", "old001", "old002", "old003", "old004"]
        stats = {t.template: t for t in queries.template_stats(db, None)}
        assert (stats["alpha"].runs, stats["beta"].runs) == (15, 15)
        assert stats["alpha"].p50_s == 16.0  # runs of 2, 4, ... 30 s: the 8th is 16 s
    finally:
        db.dispose()
