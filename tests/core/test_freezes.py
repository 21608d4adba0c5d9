"""Freezes and team caps on a real store: what the claim skips, what a row says, who may act."""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import write_template

from opsconsole.config import Settings
from opsconsole.core.access import parse_policy
from opsconsole.core.audit import AuditRequest
from opsconsole.core.clock import SettableClock
from opsconsole.core.errors import Forbidden, InvalidParams, InvalidTransition, NotFound
from opsconsole.core.freezes import FreezeRequest
from opsconsole.core.service import ListRequest, OpsService, SubmitRequest
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store.claim import claim
from opsconsole.core.store.db import Database, events, freezes

ROOT_USER = pwd.getpwuid(os.getuid()).pw_name
ROOT_GROUP = grp.getgrgid(os.getgid()).gr_name


@pytest.fixture
def teams_settings(settings: Settings) -> Settings:
    policy = parse_policy(
        None,
        {
            "web": {"members": [f"user:{ROOT_USER}"], "max_concurrent": 2},
            "db": {"members": [f"group:{ROOT_GROUP}"]},
        },
    )
    return dataclasses.replace(settings, policy=policy)


@pytest.fixture
def svc(teams_settings: Settings, clock: SettableClock, catalog: Path) -> Iterator[OpsService]:
    for name, team in (("webjob", "web"), ("dbjob", "db"), ("plain", None)):
        body = "runner: shell\ncommand: [echo, hi]\n"
        if team:
            body += f"team: {team}\n"
        if name == "dbjob":
            body += "concurrency: {key: db-main, limit: 10}\n"
        write_template(catalog, name, body)
    db = Database(teams_settings.db)
    yield OpsService(teams_settings, db, clock=clock)
    db.dispose()


def _claim(svc: OpsService) -> str | None:
    row = claim(svc.db, "w1", svc.now(), 30.0, team_caps=svc.settings.policy.team_caps())
    return None if row is None else row["id"]


def _submit(svc: OpsService, template: str, *tags: str) -> str:
    return svc.submit(SubmitRequest(template, tags=tags)).id


def test_a_freeze_of_all_stops_claims_running_jobs_go_on_and_a_lift_frees_them(
    svc: OpsService,
) -> None:
    running = _submit(svc, "plain")
    assert _claim(svc) == running
    waiting = _submit(svc, "plain")
    f = svc.set_freeze(FreezeRequest(reason="datacenter move", all=True))
    assert _claim(svc) is None
    assert not claim_store.any_ready(svc.db, svc.now())
    assert svc.get(running).state.value == "running"  # not stopped
    assert svc.get(waiting).frozen == "frozen: datacenter move (until lifted)"
    svc.lift_freeze(f.id, reason="move done")
    assert svc.get(waiting).frozen is None
    assert _claim(svc) == waiting
    assert svc.freezes() == []
    assert [v.status for v in svc.freezes(include_ended=True)] == ["lifted"]


@pytest.mark.parametrize(
    ("scope", "frozen_template", "frozen_tags"),
    [
        ({"tag": "nightly"}, "plain", ("nightly",)),
        ({"team": "web"}, "webjob", ()),
        ({"key": "db-main"}, "dbjob", ()),
    ],
)
def test_a_scoped_freeze_holds_only_its_jobs(
    svc: OpsService, scope: dict[str, str], frozen_template: str, frozen_tags: tuple[str, ...]
) -> None:
    # the frozen job is older and of higher priority: the claim must pass over it
    held = svc.submit(SubmitRequest(frozen_template, tags=frozen_tags, priority=9)).id
    # a tag that only contains the frozen one, and a LIKE wildcard, are no match
    free = _submit(svc, "plain", "nightly-2", "n%ghtly")
    svc.set_freeze(FreezeRequest(reason="hold", **scope))
    assert _claim(svc) == free
    assert _claim(svc) is None
    page = svc.list_jobs(ListRequest(states=("queued",)))
    assert [j.frozen for j in page.jobs] == ["frozen: hold (until lifted)"]
    assert [j.id for j in svc.queue()] == [held] and svc.queue()[0].frozen


def test_a_freeze_ends_by_itself_at_its_until_time(svc: OpsService, clock: SettableClock) -> None:
    job = _submit(svc, "plain")
    until = svc.now() + timedelta(hours=2)
    svc.set_freeze(FreezeRequest(reason="window", all=True, until=until))
    assert svc.get(job).frozen == "frozen: window (until 2026-01-01 14:00Z)"
    clock.set(until - timedelta(seconds=1))
    assert _claim(svc) is None
    clock.set(until)
    assert svc.freezes() == []
    assert [v.status for v in svc.freezes(include_ended=True)] == ["ended"]
    assert _claim(svc) == job
    with pytest.raises(InvalidTransition, match="already ended"):
        svc.lift_freeze(svc.freezes(include_ended=True)[0].id)


def test_freezes_are_audited_with_the_actor(svc: OpsService) -> None:
    f = svc.set_freeze(FreezeRequest(reason="sale weekend", team="web"))
    svc.lift_freeze(f.id, reason="sale over")
    page = svc.audit(AuditRequest(action="freeze"))
    assert [(e.kind, e.actor, e.job_id) for e in page.events] == [
        ("freeze_lifted", ROOT_USER, ""),
        ("freeze", ROOT_USER, ""),
    ]
    assert "sale weekend" in page.events[1].message
    assert "sale over" in page.events[0].message


def _nothing_changed(svc: OpsService) -> tuple[int, int]:
    with svc.db.read() as conn:
        return (
            conn.execute(sa.select(sa.func.count()).select_from(freezes)).scalar_one(),
            conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one(),
        )


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (FreezeRequest(reason="", all=True), "a freeze needs a reason"),
        (FreezeRequest(reason="   ", all=True), "a freeze needs a reason"),
        (FreezeRequest(reason="two\nlines", all=True), "one line"),
        (FreezeRequest(reason="why"), "exactly one of --all, --tag, --team or --key"),
        (FreezeRequest(reason="why", all=True, tag="x"), "exactly one of"),
        (FreezeRequest(reason="why", tag="a,b"), "no commas"),
        (FreezeRequest(reason="why", team="nosuch"), "no team 'nosuch'"),
        (FreezeRequest(reason="why", key=""), "--key is required"),
    ],
)
def test_bad_freezes_are_one_line_and_change_nothing(
    svc: OpsService, req: FreezeRequest, message: str
) -> None:
    before = _nothing_changed(svc)
    with pytest.raises(InvalidParams, match=message) as err:
        svc.set_freeze(req)
    assert "\n" not in str(err.value)
    assert _nothing_changed(svc) == before


def test_an_until_in_the_past_is_refused(svc: OpsService) -> None:
    with pytest.raises(InvalidParams, match="in the future"):
        svc.set_freeze(FreezeRequest(reason="x", all=True, until=svc.now()))
    assert svc.freezes(include_ended=True) == []


def test_lifting_an_unknown_or_lifted_freeze_is_refused(svc: OpsService) -> None:
    with pytest.raises(NotFound):
        svc.lift_freeze(99)
    f = svc.set_freeze(FreezeRequest(reason="x", all=True))
    svc.lift_freeze(f.id)
    with pytest.raises(InvalidTransition, match="already lifted"):
        svc.lift_freeze(f.id)


def test_only_an_admin_may_freeze_and_a_refusal_is_audited(
    settings: Settings, clock: SettableClock
) -> None:
    policy = parse_policy({"operator": [f"user:{ROOT_USER}"]}, None)
    db = Database(settings.db)
    try:
        svc = OpsService(dataclasses.replace(settings, policy=policy), db, clock=clock)
        with pytest.raises(Forbidden, match="needs the admin role"):
            svc.set_freeze(FreezeRequest(reason="x", all=True))
        assert svc.freezes(include_ended=True) == []
        refused = svc.audit(AuditRequest(action="refused")).events
        assert [(e.job_id, e.actor) for e in refused] == [("", ROOT_USER)]
    finally:
        db.dispose()


def test_a_team_cap_holds_the_teams_jobs_and_no_others(svc: OpsService) -> None:
    web = [svc.submit(SubmitRequest("webjob", priority=9 - i)).id for i in range(3)]
    other = _submit(svc, "dbjob")  # lower priority: claimed only when web must wait
    assert _claim(svc) == web[0]
    assert _claim(svc) == web[1]
    assert _claim(svc) == other  # web is at its cap of 2: the third waits
    assert _claim(svc) is None
    assert not claim_store.any_ready(svc.db, svc.now(), team_caps={"web": 2})
    svc.cancel(web[0])  # a running job asked to stop is still running: no place yet
    with svc.db.write() as conn:
        conn.execute(sa.text("UPDATE jobs SET state = 'succeeded' WHERE id = :id"), {"id": web[0]})
    assert _claim(svc) == web[2]


def test_jobs_list_and_stats_filter_by_team(svc: OpsService) -> None:
    web = _submit(svc, "webjob")
    _submit(svc, "dbjob")
    page = svc.list_jobs(ListRequest(team="web"))
    assert [j.id for j in page.jobs] == [web] and page.jobs[0].team == "web"
    assert svc.stats(team="web").counts["queued"] == 1
    assert svc.stats().counts["queued"] == 2
    with pytest.raises(InvalidParams, match="invalid team"):
        svc.list_jobs(ListRequest(team="Web Team"))


def test_the_claim_stays_one_indexed_statement(svc: OpsService) -> None:
    """The freeze and team checks ride on the claim's index walk: no scan of the jobs table."""
    for _ in range(3):
        _submit(svc, "webjob")
    svc.set_freeze(FreezeRequest(reason="x", tag="t"))
    pick = claim_store.ready_query(svc.now(), "sqlite", {"web": 2})
    compiled = pick.compile(svc.db.engine, compile_kwargs={"literal_binds": True})
    with svc.db.read() as conn:
        plan = [r[-1] for r in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {compiled}"))]
    outer = [p for p in plan if "jobs" in p and "freezes" not in p]
    assert any("ix_jobs_claim" in p for p in plan), plan
    assert not any(p.startswith("SCAN jobs") for p in outer), plan
    # lifted freezes pile up over the years: only the active ones are read, by index
    assert not any(p.startswith("SCAN freezes") for p in plan), plan
