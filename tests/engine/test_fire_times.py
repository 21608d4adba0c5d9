"""When a cron schedule fires, across daylight-saving changes: one fire per wall-clock time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from opsconsole.core.cron import parse_cron
from opsconsole.engine.fire_times import fire_times

BERLIN = ZoneInfo("Europe/Berlin")


def local(times: list[datetime]) -> list[str]:
    return [t.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for t in times]


def test_spring_forward_fires_once_at_the_first_time_that_exists() -> None:
    # 2027-03-28: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that night
    times = fire_times(parse_cron("30 2 * * *"), BERLIN, datetime(2027, 3, 26, 12, tzinfo=UTC))
    assert local(times)[:3] == ["03-27 02:30 CET", "03-28 03:30 CEST", "03-29 02:30 CEST"]


def test_fall_back_fires_once_although_the_hour_comes_twice() -> None:
    # 2027-10-31: 03:00 CEST becomes 02:00 CET; 02:30 comes twice that night
    times = fire_times(parse_cron("30 2 * * *"), BERLIN, datetime(2027, 10, 29, 12, tzinfo=UTC))
    assert local(times)[:3] == ["10-30 02:30 CEST", "10-31 02:30 CEST", "11-01 02:30 CET"]


def test_every_twenty_minutes_through_both_changes_never_repeats_or_goes_back() -> None:
    spec = parse_cron("*/20 * * * *")
    fall = fire_times(spec, BERLIN, datetime(2027, 10, 30, 23, 50, tzinfo=UTC), limit=7)
    # the repeated hour's wall-clock times fired in its first pass: the second pass is quiet
    assert local(fall) == [
        "10-31 02:00 CEST",
        "10-31 02:20 CEST",
        "10-31 02:40 CEST",
        "10-31 03:00 CET",
        "10-31 03:20 CET",
        "10-31 03:40 CET",
        "10-31 04:00 CET",
    ]
    spring = fire_times(spec, BERLIN, datetime(2027, 3, 28, 0, 30, tzinfo=UTC), limit=4)
    assert local(spring) == [
        "03-28 01:40 CET",
        "03-28 03:00 CEST",  # 02:00, which the clock skips, and 03:00 are one fire
        "03-28 03:20 CEST",
        "03-28 03:40 CEST",
    ]
    for times in (fall, spring):
        assert times == sorted(set(times))


def test_apscheduler_alone_fires_twice_and_local_arithmetic_steps_back() -> None:
    # why wall-clock times are computed in UTC and placed here
    trigger = CronTrigger(minute="30", hour="2", timezone=BERLIN)
    now, fires = datetime(2027, 10, 30, 12, tzinfo=UTC), []
    for _ in range(3):
        nxt = trigger.get_next_fire_time(None, now)
        fires.append(nxt)
        now = nxt.astimezone(UTC) + timedelta(microseconds=1)
    assert local(fires) == ["10-31 02:30 CEST", "10-31 02:30 CET", "11-01 02:30 CET"]
    second = fires[1]
    assert second.fold == 1  # winter time's 02:30: only fold tells it from summer time's
    stepped = (second + timedelta(microseconds=1)).astimezone(UTC)
    # arithmetic drops fold: one microsecond later is an hour earlier, by the first 02:30
    assert stepped == fires[0].astimezone(UTC) + timedelta(microseconds=1)
    assert stepped < second.astimezone(UTC) - timedelta(minutes=59)


def test_times_are_aware_utc_strictly_after_and_bounded() -> None:
    spec = parse_cron("0 * * * *")
    after = datetime(2027, 1, 1, 5, 0, tzinfo=UTC)
    times = fire_times(spec, ZoneInfo("UTC"), after, limit=3)
    assert times == [datetime(2027, 1, 1, h, tzinfo=UTC) for h in (6, 7, 8)]
    assert all(t.tzinfo is UTC for t in times)
    until = datetime(2027, 1, 1, 7, 30, tzinfo=UTC)
    assert len(fire_times(spec, ZoneInfo("UTC"), after, until=until, limit=10)) == 2
    with pytest.raises(ValueError, match="aware"):
        fire_times(spec, BERLIN, datetime(2027, 1, 1))


def test_either_day_field_fires_in_a_zone() -> None:
    times = fire_times(parse_cron("0 9 1 * sun"), BERLIN, datetime(2027, 1, 1, tzinfo=UTC), limit=3)
    assert local(times) == ["01-01 09:00 CET", "01-03 09:00 CET", "01-10 09:00 CET"]
