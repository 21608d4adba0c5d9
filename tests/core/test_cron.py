"""Crontab expressions read with crontab's meaning, and turned into APScheduler triggers that
fire exactly when crontab would (APScheduler computes the times; its numbering never shows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from opsconsole.core.cron import check_zone, parse_cron
from opsconsole.core.errors import InvalidParams

START = datetime(2026, 12, 1, tzinfo=UTC)  # a Tuesday


def fires(expr: str, n: int = 6, start: datetime = START) -> list[datetime]:
    """The next ``n`` fire times after ``start``, computed by APScheduler from our fields."""
    triggers = [CronTrigger(timezone=UTC, **f) for f in parse_cron(expr).trigger_fields()]
    trigger = triggers[0] if len(triggers) == 1 else OrTrigger(triggers)
    out, prev, now = [], None, start
    for _ in range(n):
        nxt = trigger.get_next_fire_time(prev, now)
        assert nxt is not None
        out.append(nxt)
        prev, now = nxt, nxt + timedelta(microseconds=1)
    return out


@pytest.mark.parametrize("sunday", ["0", "7", "sun", "SUN"])
def test_sunday_is_0_7_or_its_name(sunday: str) -> None:
    times = fires(f"30 9 * * {sunday}", 3)
    assert [t.strftime("%a %H:%M") for t in times] == ["Sun 09:30"] * 3
    assert times[0] == datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


def test_names_and_ranges_of_days_and_months() -> None:
    weekdays = fires("0 8 * * mon-fri", 5)
    assert [t.strftime("%a") for t in weekdays] == ["Tue", "Wed", "Thu", "Fri", "Mon"]
    assert {t.month for t in fires("0 0 1 jan,jul *", 4)} == {1, 7}
    weekend = fires("0 12 * * 6-7", 4)  # Saturday to Sunday through 7
    assert [t.strftime("%a") for t in weekend] == ["Sat", "Sun", "Sat", "Sun"]


def test_steps_lists_and_crontabs_start_slash_step() -> None:
    assert [t.minute for t in fires("*/15 * * * *", 5)] == [0, 15, 30, 45, 0]
    assert [t.minute for t in fires("5/20 10 * * *", 3)] == [5, 25, 45]
    assert [t.hour for t in fires("0 1-10/3,22 * * *", 5)] == [1, 4, 7, 10, 22]


def test_both_day_fields_restricted_fire_on_either_as_in_crontab() -> None:
    # the 15th OR a Monday: APScheduler alone would ask for a Monday the 15th
    days = [t.date().isoformat() for t in fires("0 6 15 * mon", 4)]
    assert days == ["2026-12-07", "2026-12-14", "2026-12-15", "2026-12-21"]
    assert len(parse_cron("0 6 15 * mon").trigger_fields()) == 2
    assert len(parse_cron("0 6 15 * *").trigger_fields()) == 1


def test_macros_and_the_29th_of_february() -> None:
    assert fires("@hourly", 2)[1] - fires("@hourly", 2)[0] == timedelta(hours=1)
    assert fires("@weekly", 1)[0].strftime("%a %H:%M") == "Sun 00:00"
    assert fires("0 0 29 2 *", 1)[0] == datetime(2028, 2, 29, tzinfo=UTC)  # leap years fire
    assert parse_cron("  0   0 *  * *  ").expr == "0 0 * * *"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "cron: the expression is empty"),
        ("* * * *", "has 4 field(s); crontab takes 5"),
        ("60 * * * *", "cron minute: 60 is out of range 0-59"),
        ("0 24 * * *", "cron hour: 24 is out of range 0-23"),
        ("0 0 32 * *", "cron day-of-month: 32 is out of range 1-31"),
        ("0 0 0 * *", "cron day-of-month: 0 is out of range 1-31"),
        ("0 0 * 13 *", "cron month: 13 is out of range 1-12"),
        ("0 0 * foo *", "cron month: 'foo' is not a month (1-12 or jan-dec)"),
        ("0 0 * * 8", "cron day-of-week: 8 is out of range 0-7"),
        ("0 0 * * mon-xyz", "cron day-of-week: 'xyz' is not a day (0-7 or sun-sat)"),
        ("0 0 * * sat-sun", "cron day-of-week: range 'sat-sun' runs backwards"),
        ("*/0 * * * *", "cron minute: step '0' must be a number above 0"),
        ("1,,2 * * * *", "cron minute: an empty item in '1,,2'"),
        ("0 0 30 2 *", "cron day-of-month: '0 0 30 2 *' never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("@reboot", "cron: unknown macro '@reboot'"),
    ],
)
def test_a_bad_expression_is_one_line_naming_the_field(expr: str, message: str) -> None:
    with pytest.raises(InvalidParams) as err:
        parse_cron(expr)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_day_that_never_comes_still_fires_when_its_weekday_does() -> None:
    # crontab ORs the two: the 30th of February never comes, but Mondays in February do
    assert fires("0 0 30 2 mon", 1)[0] == datetime(2027, 2, 1, tzinfo=UTC)


def test_zones_are_iana_names() -> None:
    assert check_zone("Europe/Berlin").key == "Europe/Berlin"
    for bad in ("Mars/Olympus", "", "../etc/passwd", "/etc/localtime"):
        with pytest.raises(InvalidParams, match="tz: unknown time zone"):
            check_zone(bad)
