"""Schedules through the service on a real store: add and its refusals, the views, pause and
resume, run, run missed, skip to now, removal, events, secrets sealed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import write_template

from opsconsole.core.clock import SettableClock
from opsconsole.core.errors import Conflict, InvalidParams, InvalidTransition, NotFound
from opsconsole.core.schedules import ScheduleRequest
from opsconsole.core.service import OpsService
from opsconsole.core.store.db import events, jobs, schedule_fires, schedules
from opsconsole.engine.scheduler import tick

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def svc(clocked: OpsService, clock: SettableClock, catalog: Path) -> OpsService:
    write_template(
        catalog,
        "echo",
        "runner: shell\ncommand: [echo, '{{ word }}']\n"
        "params:\n  word: {type: string, required: true}\n"
        "  token: {type: string, secret: true}\n  count: {type: integer, min: 1, default: 1}\n",
    )
    write_template(catalog, "careful", "runner: shell\ncommand: [echo]\nconfirm: production\n")
    clock.set(T0)
    return clocked


Add = Callable[..., Any]


@pytest.fixture
def add(svc: OpsService) -> Add:
    def add_schedule(name: str = "s1", **kw: Any) -> Any:
        kw.setdefault("template", "echo")
        kw.setdefault("params", {"word": "hi"})
        if "cron" not in kw and "every" not in kw:
            kw["every"] = "1h"
        return svc.add_schedule(ScheduleRequest(name=name, **kw))

    return add_schedule


def _count(svc: OpsService, table: Any) -> int:
    with svc.db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _kinds(svc: OpsService) -> list[tuple[str, str, Any]]:
    with svc.db.read() as conn:
        rows = conn.execute(
            sa.select(events.c.job_id, events.c.kind, events.c.data)
            .where(events.c.kind.like("schedule.%"))
            .order_by(events.c.id)
        ).all()
    return [(r.job_id, r.kind, r.data) for r in rows]


def test_a_cron_schedule_shows_its_next_five_fire_times_in_utc(svc: OpsService, add: Add) -> None:
    view = add(cron="30 2 * * *", tz="Europe/Berlin")
    assert view.next_fire_at == datetime(2026, 3, 3, 1, 30, tzinfo=UTC)  # 02:30 CET
    detail = svc.schedule("s1")
    assert [t.day for t in detail.next_fires] == [3, 4, 5, 6, 7]
    assert detail.ledger == []
    assert detail.view.when == "30 2 * * * (Europe/Berlin)"
    assert detail.to_dict()["next_fires"][0] == "2026-03-03T01:30:00.000Z"


def test_day_of_week_0_7_and_names_all_mean_sunday(svc: OpsService, add: Add) -> None:
    for name, dow in (("zero", "0"), ("seven", "7"), ("named", "sun")):
        add(name, cron=f"0 9 * * {dow}")
    fires = [svc.schedule(n).next_fires for n in ("zero", "seven", "named")]
    assert fires[0] == fires[1] == fires[2]
    assert all(t.weekday() == 6 and t.hour == 9 for t in fires[0])


def test_an_interval_schedule_fires_every_interval_from_when_it_was_added(
    svc: OpsService, add: Add
) -> None:
    view = add(every="15m")
    assert view.every == "15m"
    assert svc.schedule("s1").next_fires == [T0 + timedelta(minutes=15 * k) for k in range(1, 6)]


def test_secret_parameters_are_sealed_and_masked_in_every_view(svc: OpsService, add: Add) -> None:
    view = add(params={"word": "hi", "token": "hunter2-secret"})
    assert view.params == {"word": "hi", "token": "***"}
    with svc.db.read() as conn:
        row = conn.execute(sa.select(schedules)).mappings().one()
    assert "hunter2-secret" not in str(dict(row))
    assert svc.box.open(row["secret_blob"]) == {"token": "hunter2-secret"}
    # the fired job gets the secret (sealed), never in its listed params
    job = svc.run_schedule("s1")
    assert job.params["token"] == "***"
    with svc.db.read() as conn:
        blob = conn.execute(sa.select(jobs.c.secret_blob).where(jobs.c.id == job.id)).scalar()
    assert svc.box.open(blob) == {"token": "hunter2-secret"}
    assert "hunter2-secret" not in str(svc.schedule("s1").to_dict())


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"cron": "61 * * * *"}, "cron minute: 61 is out of range 0-59"),
        ({"cron": "0 0 30 2 *"}, "never fires"),
        ({"cron": "0 0 * * *", "tz": "Mars/Olympus"}, "tz: unknown time zone"),
        ({"every": "0s"}, "every: must be above zero"),
        ({"every": "-5m"}, "every: invalid duration"),
        ({"every": "soon"}, "every: invalid duration"),
        ({"every": "1m", "cron": "* * * * *"}, "give exactly one of --cron and --every"),
        ({"jitter": "2x"}, "jitter: invalid duration"),
        ({"catchup": "some"}, "catchup: 'some' is not one of latest|all|skip"),
        ({"overlap": "never"}, "overlap: 'never' is not one of skip|queue|allow"),
        ({"every": "1m", "tz": "UTC"}, "tz: a zone only applies to --cron"),
        ({"params": {}}, "missing required parameter 'word'"),
        ({"params": {"word": "x", "bogus": 1}}, "unknown parameter 'bogus'"),
        ({"params": {"word": "x", "count": "0"}}, "count"),
        ({"template": "careful", "params": {}}, "asks for a typed confirmation"),
    ],
)
def test_refusals_name_the_field_and_store_nothing(
    svc: OpsService, add: Add, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParams, match=message) as info:
        add(**kw)
    assert "\n" not in str(info.value)
    assert _count(svc, schedules) == 0
    assert _kinds(svc) == []


def test_neither_cron_nor_every_an_unknown_template_or_a_bad_name_is_refused(
    svc: OpsService,
) -> None:
    with pytest.raises(InvalidParams, match="give exactly one of --cron and --every"):
        svc.add_schedule(ScheduleRequest(name="a", template="echo", params={"word": "x"}))
    with pytest.raises(NotFound, match="unknown template 'nope'"):
        svc.add_schedule(ScheduleRequest(name="a", template="nope", every="1m"))
    with pytest.raises(InvalidParams, match="name: 'a b' is not a schedule name"):
        svc.add_schedule(ScheduleRequest(name="a b", template="echo", every="1m"))
    assert _count(svc, schedules) == 0


def test_a_duplicate_name_is_refused_and_the_first_stays(svc: OpsService, add: Add) -> None:
    add(every="1h")
    with pytest.raises(Conflict, match="name: a schedule 's1' exists already"):
        add(every="5m")
    assert svc.schedules()[0].every == "1h"


def test_add_pause_resume_remove_are_events_about_no_job(svc: OpsService, add: Add) -> None:
    add()
    svc.pause_schedule("s1")
    svc.resume_schedule("s1")
    svc.remove_schedule("s1")
    assert [(j, k, d) for j, k, d in _kinds(svc)] == [
        ("", "schedule.added", {"schedule": "s1"}),
        ("", "schedule.paused", {"schedule": "s1"}),
        ("", "schedule.resumed", {"schedule": "s1"}),
        ("", "schedule.removed", {"schedule": "s1"}),
    ]
    assert svc.schedules() == []
    with pytest.raises(NotFound, match="no schedule 's1'"):
        svc.schedule("s1")


def test_pausing_twice_or_resuming_an_active_schedule_is_refused(svc: OpsService, add: Add) -> None:
    add()
    with pytest.raises(InvalidTransition, match="schedule s1 is not paused"):
        svc.resume_schedule("s1")
    svc.pause_schedule("s1")
    with pytest.raises(InvalidTransition, match="schedule s1 is paused already"):
        svc.pause_schedule("s1")
    with pytest.raises(NotFound):
        svc.pause_schedule("nope")


def test_fire_times_passed_while_paused_are_missed_never_run(
    svc: OpsService, add: Add, clock: SettableClock
) -> None:
    add(every="1h")
    svc.pause_schedule("s1")
    clock.set(T0 + timedelta(hours=3, minutes=30))
    tick(svc, clock.now())
    assert _count(svc, jobs) == 0  # a paused schedule does not fire
    # while paused, show says what it would fire after a resume now
    assert svc.schedule("s1").next_fires[0] == T0 + timedelta(hours=4)
    view = svc.resume_schedule("s1")
    assert view.next_fire_at == T0 + timedelta(hours=4)
    ledger = svc.schedule("s1").ledger
    assert [(f.fire_at, f.status, f.reason) for f in ledger] == [
        (T0 + timedelta(hours=h), "missed", "paused") for h in (3, 2, 1)
    ]
    tick(svc, clock.now())
    assert _count(svc, jobs) == 0
    assert svc.run_missed("s1") == []  # pausing was the choice: run-missed leaves them


def test_run_fires_now_without_moving_the_cursor(svc: OpsService, add: Add) -> None:
    add()
    job = svc.run_schedule("s1")
    assert job.state == "queued" and job.params == {"word": "hi", "token": None, "count": 1}
    detail = svc.schedule("s1")
    assert detail.view.next_fire_at == T0 + timedelta(hours=1)
    assert detail.view.last_job == job.id and detail.view.last_job_state == "queued"
    [fire] = detail.ledger
    assert (fire.fire_at, fire.status, fire.job_id) == (T0, "fired", job.id)
    assert fire.reason == f"run by {svc.identity.name}"
    with svc.db.read() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job.id)).mappings().one()
        msg = conn.execute(
            sa.select(events.c.message).where(
                events.c.job_id == job.id, events.c.kind == "submitted"
            )
        ).scalar()
    assert row["schedule"] == "s1"
    assert msg == "fired by schedule s1 for 2026-03-02T12:00:00.000Z"


def test_run_missed_runs_each_missed_fire_once_and_marks_it_fired(
    svc: OpsService, add: Add, clock: SettableClock
) -> None:
    add(every="1h")  # catch-up latest
    clock.set(T0 + timedelta(hours=4, minutes=10))
    tick(svc, clock.now())
    statuses = [(f.fire_at.hour, f.status) for f in svc.schedule("s1").ledger]
    assert statuses == [(16, "fired"), (15, "missed"), (14, "missed"), (13, "missed")]
    ran = svc.run_missed("s1")
    assert len(ran) == 3
    ledger = svc.schedule("s1").ledger
    assert all(f.status == "fired" and f.job_id for f in ledger)
    assert len({f.job_id for f in ledger}) == 4
    assert ledger[-1].reason.startswith(f"run missed by {svc.identity.name} (was: the store")
    assert svc.run_missed("s1") == []
    assert _count(svc, jobs) == 4


def test_skip_to_now_records_due_times_skipped_and_moves_the_cursor_past_now(
    svc: OpsService, add: Add, clock: SettableClock
) -> None:
    add(every="1h")
    clock.set(T0 + timedelta(hours=2, minutes=30))
    assert svc.skip_to_now("s1") == 2
    detail = svc.schedule("s1")
    assert detail.view.next_fire_at == T0 + timedelta(hours=3)
    assert [(f.status, f.reason) for f in detail.ledger] == [
        ("skipped", f"skipped to now by {svc.identity.name}")
    ] * 2
    tick(svc, clock.now())
    assert _count(svc, jobs) == 0
    assert svc.skip_to_now("s1") == 0


def test_a_template_schedule_cannot_be_removed_by_hand(
    svc: OpsService, catalog: Path, clock: SettableClock
) -> None:
    write_template(
        catalog,
        "nightly",
        "runner: shell\ncommand: [echo, nightly]\n"
        "schedule: {cron: '30 2 * * *', tz: Europe/Berlin, catchup: skip}\n",
    )
    tick(svc, clock.now())
    [view] = svc.schedules()
    assert (view.name, view.origin, view.catchup, view.cron) == (
        "nightly",
        "template",
        "skip",
        "30 2 * * *",
    )
    with pytest.raises(InvalidParams, match="declared by template 'nightly'"):
        svc.remove_schedule("nightly")
    assert _count(svc, schedules) == 1


def test_the_ledger_keeps_fires_after_a_schedule_is_removed(svc: OpsService, add: Add) -> None:
    add()
    svc.run_schedule("s1")
    svc.remove_schedule("s1")
    assert _count(svc, schedule_fires) == 1


def test_a_run_by_hand_is_a_submit_a_freeze_holds_its_job_and_a_gone_template_refuses(
    svc: OpsService, add: Add, catalog: Path
) -> None:
    from opsconsole.core.freezes import FreezeRequest

    add()
    svc.set_freeze(FreezeRequest(reason="move", all=True))
    job = svc.run_schedule("s1")
    assert job.state == "queued" and job.frozen == "frozen: move (until lifted)"
    (catalog / "templates" / "echo.yaml").unlink()
    with pytest.raises(NotFound, match="unknown template 'echo'"):
        svc.run_schedule("s1")
    assert len(svc.schedule("s1").ledger) == 1
