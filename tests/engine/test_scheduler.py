"""The schedules' tick, driven by the settable clock on a real store: DST days, catch-up after
downtime, overlap, freezes, jitter, template schedules, and one fire across services."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from support import write_template

from opsconsole.config import Settings
from opsconsole.core.clock import SettableClock
from opsconsole.core.fire_plan import GRACE
from opsconsole.core.freezes import FreezeRequest
from opsconsole.core.schedules import ScheduleRequest
from opsconsole.core.service import OpsService
from opsconsole.core.store.db import Database, jobs, schedule_fires
from opsconsole.engine.fire_times import fire_times
from opsconsole.engine.scheduler import tick

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def svc(clocked: OpsService, clock: SettableClock, catalog: Path) -> OpsService:
    write_template(
        catalog,
        "echo",
        "runner: shell\ncommand: [echo, '{{ word }}']\nparams:\n  word: {type: string}\n"
        "tags: [nightly]\n",
    )
    clock.set(T0)
    return clocked


def add(svc: OpsService, name: str = "s1", **kw: Any) -> None:
    kw.setdefault("template", "echo")
    svc.add_schedule(ScheduleRequest(name=name, **kw))


def fired_jobs(svc: OpsService, name: str = "s1") -> list[dict[str, Any]]:
    with svc.db.read() as conn:
        q = sa.select(jobs).where(jobs.c.schedule == name).order_by(jobs.c.created_at)
        return [dict(r) for r in conn.execute(q).mappings()]


def ledger(svc: OpsService, name: str = "s1") -> list[tuple[datetime, str, str]]:
    """(fire time, status, reason), oldest first."""
    rows = svc.schedule(name, ledger=10_000).ledger
    return [(f.fire_at, f.status, f.reason) for f in reversed(rows)]


def sweep(svc: OpsService, clock: SettableClock, start: datetime, end: datetime, step: float):
    """Tick every ``step`` seconds from ``start`` to ``end``, as a running worker would."""
    t = start
    while t <= end:
        clock.set(t)
        tick(svc, t)
        t += timedelta(seconds=step)


def local(t: datetime) -> str:
    return t.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M %Z")


# -- DST: one fire per local wall-clock time ----------------------------------------------


def test_spring_forward_in_berlin_fires_once_at_0330_local(
    svc: OpsService, clock: SettableClock
) -> None:
    clock.set(datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    add(svc, cron="30 2 * * *", tz="Europe/Berlin", overlap="allow")
    # 29 March 2026: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that night
    sweep(svc, clock, clock.now(), datetime(2026, 3, 31, 6, 0, tzinfo=UTC), 20)
    fires = [local(j["run_at"]) for j in fired_jobs(svc)]
    assert fires == [
        "2026-03-28 02:30 CET",
        "2026-03-29 03:30 CEST",
        "2026-03-30 02:30 CEST",
        "2026-03-31 02:30 CEST",
    ]
    assert [s for _, s, _ in ledger(svc)] == ["fired"] * 4


def test_fall_back_in_berlin_fires_once_although_0230_comes_twice(
    svc: OpsService, clock: SettableClock
) -> None:
    clock.set(datetime(2026, 10, 23, 12, 0, tzinfo=UTC))
    add(svc, cron="30 2 * * *", tz="Europe/Berlin", overlap="allow")
    # 25 October 2026: 03:00 CEST falls back to 02:00 CET; 02:30 comes twice
    sweep(svc, clock, clock.now(), datetime(2026, 10, 27, 6, 0, tzinfo=UTC), 20)
    fires = [local(j["run_at"]) for j in fired_jobs(svc)]
    assert fires == [
        "2026-10-24 02:30 CEST",
        "2026-10-25 02:30 CEST",  # the first 02:30; not again an hour later
        "2026-10-26 02:30 CET",
        "2026-10-27 02:30 CET",
    ]
    assert len(ledger(svc)) == 4


def test_an_hourly_cron_on_the_fall_back_day_fires_each_distinct_instant_once(
    svc: OpsService, clock: SettableClock
) -> None:
    clock.set(datetime(2026, 10, 24, 22, 0, tzinfo=UTC))
    add(svc, cron="15 * * * *", tz="Europe/Berlin", overlap="allow")
    sweep(svc, clock, clock.now(), datetime(2026, 10, 25, 4, 0, tzinfo=UTC), 30)
    times = [j["run_at"] for j in fired_jobs(svc)]
    assert len(times) == len(set(times))
    walls = Counter(t.astimezone(BERLIN).strftime("%H:%M") for t in times)
    assert walls["02:15"] == 1  # one fire per wall-clock time, even the one that repeats


# -- catch-up after downtime -------------------------------------------------------------


def down_for_five_hours(
    svc: OpsService, clock: SettableClock, catchup: str, overlap: str = "skip"
) -> None:
    add(svc, every="1h", catchup=catchup, overlap=overlap)
    clock.set(T0 + timedelta(hours=5, minutes=20))  # nobody ticked: the store was down
    tick(svc, clock.now())


def test_catchup_latest_runs_the_newest_missed_fire_and_lists_the_others_missed(
    svc: OpsService, clock: SettableClock
) -> None:
    down_for_five_hours(svc, clock, "latest")
    hours = [T0 + timedelta(hours=h) for h in range(1, 6)]
    down = "the store or every worker was down"
    assert ledger(svc) == [
        *[(t, "missed", down) for t in hours[:4]],
        (hours[4], "fired", "late: the newest missed fire (catch-up latest)"),
    ]
    assert len(fired_jobs(svc)) == 1
    assert svc.schedule("s1").view.next_fire_at == T0 + timedelta(hours=6)


def test_catchup_all_runs_every_missed_fire_one_after_another_with_overlap_queue(
    svc: OpsService, clock: SettableClock
) -> None:
    down_for_five_hours(svc, clock, "all", overlap="queue")
    assert [s for _, s, _ in ledger(svc)] == ["fired"] * 5
    made = fired_jobs(svc)
    assert [j["state"] for j in made] == ["queued"] + ["waiting"] * 4
    assert [j["depends_on"] for j in made[1:]] == [[j["id"]] for j in made[:-1]]


def test_catchup_all_with_overlap_skip_runs_the_first_and_skips_the_rest_while_it_lives(
    svc: OpsService, clock: SettableClock
) -> None:
    down_for_five_hours(svc, clock, "all")
    [first] = fired_jobs(svc)
    assert [(s, r) for _, s, r in ledger(svc)][1:] == [
        ("skipped", f"overlap: job {first['id']} still running")
    ] * 4


def test_catchup_skip_runs_none_and_lists_each_skipped(
    svc: OpsService, clock: SettableClock
) -> None:
    down_for_five_hours(svc, clock, "skip")
    assert [(s, r) for _, s, r in ledger(svc)] == [("skipped", "late: catch-up policy skip")] * 5
    assert fired_jobs(svc) == []


def test_an_on_time_fire_runs_and_late_ones_follow_latest(
    svc: OpsService, clock: SettableClock
) -> None:
    add(svc, every="1h")
    clock.set(T0 + timedelta(hours=3) + GRACE / 2)  # 1h, 2h late; 3h on time
    tick(svc, clock.now())
    assert [(t.hour - 12, s) for t, s, _ in ledger(svc)] == [
        (1, "missed"),
        (2, "missed"),
        (3, "fired"),
    ]


def test_a_long_outage_is_worked_off_in_bounded_steps_with_every_fire_listed(
    svc: OpsService, clock: SettableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsconsole.core import fire_plan

    monkeypatch.setattr(fire_plan, "MAX_FIRES", 7)
    add(svc, every="1m")
    clock.set(T0 + timedelta(minutes=30, seconds=5))
    tick(svc, clock.now())
    assert len(ledger(svc)) == 7  # one bounded step, all of it missed: newer ones wait
    assert fired_jobs(svc) == []
    for _ in range(4):
        tick(svc, clock.now())
    rows = ledger(svc)
    assert [t for t, _, _ in rows] == [T0 + timedelta(minutes=m) for m in range(1, 31)]
    assert [s for _, s, _ in rows].count("fired") == 1
    assert rows[-1][1] == "fired"


# -- overlap -----------------------------------------------------------------------------


def test_overlap_skip_records_the_fire_skipped_while_the_last_job_is_live(
    svc: OpsService, clock: SettableClock
) -> None:
    add(svc, every="1m", overlap="skip")
    sweep(svc, clock, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), 60)
    [first] = fired_jobs(svc)  # no worker ran it: still queued
    assert ledger(svc)[1][1:] == ("skipped", f"overlap: job {first['id']} still running")


def test_overlap_queue_submits_a_job_that_waits_for_the_live_one(
    svc: OpsService, clock: SettableClock
) -> None:
    add(svc, every="1m", overlap="queue")
    sweep(svc, clock, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), 60)
    first, second = fired_jobs(svc)
    assert (first["state"], second["state"]) == ("queued", "waiting")
    assert second["depends_on"] == [first["id"]]
    assert ledger(svc)[1][1:] == ("fired", f"queued after job {first['id']}")


def test_overlap_allow_fires_anyway(svc: OpsService, clock: SettableClock) -> None:
    add(svc, every="1m", overlap="allow")
    sweep(svc, clock, T0 + timedelta(minutes=1), T0 + timedelta(minutes=3), 60)
    assert [j["state"] for j in fired_jobs(svc)] == ["queued"] * 3


def test_overlap_skip_fires_again_once_the_last_job_ended(
    svc: OpsService, clock: SettableClock
) -> None:
    add(svc, every="1m", overlap="skip")
    sweep(svc, clock, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1), 60)
    svc.cancel(fired_jobs(svc)[0]["id"])
    sweep(svc, clock, T0 + timedelta(minutes=2), T0 + timedelta(minutes=2), 60)
    assert [s for _, s, _ in ledger(svc)] == ["fired", "fired"]


# -- freezes, jitter, the submitted event ------------------------------------------------


def test_a_freeze_that_holds_the_template_skips_the_fire_naming_the_freeze(
    svc: OpsService, clock: SettableClock
) -> None:
    add(svc, every="1m")
    svc.set_freeze(FreezeRequest(reason="datacenter move", tag="nightly"))
    sweep(svc, clock, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1), 60)
    [(_, status, reason)] = ledger(svc)
    assert status == "skipped"
    assert reason == "frozen: freeze 1 (tag nightly): datacenter move"
    assert fired_jobs(svc) == []


def test_jitter_delays_the_job_and_the_ledger_keeps_the_nominal_time(
    svc: OpsService, clock: SettableClock
) -> None:
    add(svc, every="1h", jitter="10m", overlap="allow")
    for h in range(1, 21):
        t = T0 + timedelta(hours=h)
        clock.set(t)
        tick(svc, t)
    fires = fired_jobs(svc)
    delays = [
        (j["run_at"] - (T0 + timedelta(hours=h))).total_seconds() for h, j in enumerate(fires, 1)
    ]
    assert all(0 <= d <= 600 for d in delays)
    assert len(set(delays)) > 1  # really random, not a constant offset
    assert all(j["state"] == "scheduled" for j in fires if j["run_at"] > clock.now())
    assert [t for t, _, _ in ledger(svc)] == [T0 + timedelta(hours=h) for h in range(1, 21)]


def test_a_fired_job_says_which_schedule_and_fire_time(
    svc: OpsService, clock: SettableClock
) -> None:
    add(svc, every="1h", params={"word": "tock"})
    sweep(svc, clock, T0 + timedelta(hours=1), T0 + timedelta(hours=1), 60)
    [job] = fired_jobs(svc)
    view = svc.get(job["id"], with_events=True)
    assert view.params == {"word": "tock"}
    assert view.events is not None
    assert view.events[0].message == "fired by schedule s1 for 2026-03-02T13:00:00.000Z"


def test_a_template_gone_from_the_catalog_skips_the_fire_with_the_reason(
    svc: OpsService, clock: SettableClock, catalog: Path
) -> None:
    add(svc, every="1m")
    (catalog / "templates" / "echo.yaml").unlink()
    sweep(svc, clock, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1), 60)
    [(_, status, reason)] = ledger(svc)
    assert status == "skipped" and reason.startswith("cannot submit: unknown template 'echo'")


# -- template schedules ------------------------------------------------------------------


def test_a_template_schedule_block_is_added_changed_and_removed_with_the_template(
    svc: OpsService, clock: SettableClock, catalog: Path
) -> None:
    body = "runner: shell\ncommand: [echo, '{{ word }}']\nparams:\n  word: {type: string}\n"
    write_template(catalog, "rotate", body + "schedule: {every: 1h, params: {word: a}}\n")
    tick(svc, clock.now())
    [view] = [v for v in svc.schedules() if v.name == "rotate"]
    assert (view.origin, view.every, view.params) == ("template", "1h", {"word": "a"})
    write_template(catalog, "rotate", body + "schedule: {every: 2h, params: {word: b}}\n")
    tick(svc, clock.now())
    [view] = svc.schedules()
    assert (view.every, view.params) == ("2h", {"word": "b"})
    write_template(catalog, "rotate", body)
    tick(svc, clock.now())
    assert svc.schedules() == []


def test_a_template_schedule_with_invalid_params_is_not_made(
    svc: OpsService, clock: SettableClock, catalog: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_template(
        catalog,
        "rotate",
        "runner: shell\ncommand: [echo]\nschedule: {every: 1h, params: {nope: 1}}\n",
    )
    tick(svc, clock.now())
    assert svc.schedules() == []
    assert "unknown parameter 'nope'" in caplog.text


# -- once across services ----------------------------------------------------------------


def test_two_services_ticking_the_same_times_make_one_job_per_fire(
    settings: Settings, svc: OpsService, clock: SettableClock
) -> None:
    add(svc, every="1m", overlap="allow", catchup="all")
    times = [T0 + timedelta(minutes=m, seconds=s) for m in range(1, 41) for s in (0, 1)]
    others = [
        OpsService(settings, Database(settings.db), clock=SettableClock(T0), fire_times=fire_times)
        for _ in range(3)
    ]
    start = threading.Barrier(len(others))

    def run(other: OpsService) -> None:
        start.wait()
        for t in times:
            tick(other, t)

    threads = [threading.Thread(target=run, args=(o,)) for o in others]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    for o in others:
        o.db.dispose()
    with svc.db.read() as conn:
        fires = conn.execute(sa.select(schedule_fires)).mappings().all()
    jobs_made = fired_jobs(svc)
    assert len(fires) == 40 and {f["status"] for f in fires} == {"fired"}
    assert len(jobs_made) == 40
    assert sorted(f["job_id"] for f in fires) == sorted(j["id"] for j in jobs_made)


def test_a_run_by_hand_at_the_very_fire_time_is_that_fire_and_the_schedule_moves_on(
    svc: OpsService, clock: SettableClock
) -> None:
    add(svc, every="1h", overlap="allow")
    clock.set(T0 + timedelta(hours=1))
    job = svc.run_schedule("s1")  # the same instant as the schedule's own fire
    tick(svc, clock.now())
    assert [(t, s) for t, s, _ in ledger(svc)] == [(T0 + timedelta(hours=1), "fired")]
    assert [j["id"] for j in fired_jobs(svc)] == [job.id]
    assert svc.schedule("s1").view.next_fire_at == T0 + timedelta(hours=2)
    sweep(svc, clock, T0 + timedelta(hours=2), T0 + timedelta(hours=2), 60)
    assert len(fired_jobs(svc)) == 2
