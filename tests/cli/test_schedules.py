"""`opsconsole schedules ...` in-process on a real store: output, --json, exit codes, the one
error line of each refusal (nothing stored), crontab's day-of-week meaning, completion."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_support import Cli, as_json, ok, one_error_line
from support import write_template

from opsconsole.config import Settings
from opsconsole.core.service import OpsService
from opsconsole.engine.pool import WorkerPool
from opsconsole.engine.scheduler import tick


@pytest.fixture
def word(catalog: Path) -> str:
    write_template(
        catalog,
        "word",
        "runner: shell\ncommand: [echo, '{{ word }}']\n"
        "params:\n  word: {type: string, required: true}\n  token: {type: string, secret: true}\n",
    )
    return "word"


def add(cli: Cli, name: str, *args: str) -> dict[str, object]:
    return as_json(cli("schedules", "add", name, "--template", "word", "-p", "word=hi", *args,
                       "--json"))  # fmt: skip


def test_add_list_and_show_a_cron_schedule_in_its_zone(cli: Cli, word: str) -> None:
    out = ok(cli("schedules", "add", "nightly", "--template", word, "-p", "word=hi",
                 "--cron", "30 2 * * *", "--tz", "Europe/Berlin"))  # fmt: skip
    assert out.stdout.startswith("schedule nightly: word cron 30 2 * * * Europe/Berlin; next fire ")
    listed = ok(cli("schedules", "list")).stdout
    assert "nightly" in listed and "cron 30 2 * * * Europe/Berlin" in listed
    shown = ok(cli("schedules", "show", "nightly")).stdout
    assert shown.count("02:30:00 CE") == 5  # five next fires at 02:30 Berlin time (CET/CEST)
    assert "ledger: no fire yet" in shown
    detail = as_json(cli("schedules", "show", "nightly", "--json"))
    assert len(detail["next_fires"]) == 5 and detail["ledger"] == []
    assert detail["tz"] == "Europe/Berlin" and detail["origin"] == "cli"
    [row] = as_json(cli("schedules", "list", "--json"))
    assert row["name"] == "nightly" and row["paused"] is False


@pytest.mark.parametrize("dow", ["0", "7", "sun", "SUN"])
def test_day_of_week_0_7_and_names_are_sunday_through_the_cli(
    cli: Cli, word: str, dow: str
) -> None:
    add(cli, "weekly", "--cron", f"0 9 * * {dow}")
    fires = as_json(cli("schedules", "show", "weekly", "--json"))["next_fires"]
    days = {datetime.fromisoformat(f.replace("Z", "+00:00")).weekday() for f in fires}
    assert days == {6}


def test_month_and_day_names_and_ranges_work(cli: Cli, word: str) -> None:
    add(cli, "quarterly", "--cron", "0 6 1 jan,apr,jul,oct *")
    fires = as_json(cli("schedules", "show", "quarterly", "--json"))["next_fires"]
    months = [datetime.fromisoformat(f.replace("Z", "+00:00")).month for f in fires]
    assert set(months) <= {1, 4, 7, 10} and len(fires) == 5
    add(cli, "weekdays", "--cron", "0 8 * * mon-fri")
    fires = as_json(cli("schedules", "show", "weekdays", "--json"))["next_fires"]
    days = {datetime.fromisoformat(f.replace("Z", "+00:00")).weekday() for f in fires}
    assert days <= {0, 1, 2, 3, 4}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--cron", "61 * * * *"], 2, "cron minute: 61 is out of range 0-59"),
        (["--cron", "0 0 30 2 *"], 2, "never fires"),
        (["--cron", "0 0 * * 8"], 2, "cron day-of-week: 8 is out of range 0-7"),
        (["--cron", "0 0 * *"], 2, "has 4 field(s); crontab takes 5"),
        (["--cron", "0 0 * * *", "--tz", "Mars/Olympus"], 2, "tz: unknown time zone"),
        (["--every", "0"], 2, "every: must be above zero"),
        (["--every", "-1m"], 2, "every: invalid duration"),
        (["--every", "1m", "--jitter", "lots"], 2, "jitter: invalid duration"),
        ([], 2, "give exactly one of --cron and --every"),
        (["--every", "1m", "--cron", "* * * * *"], 2, "give exactly one of --cron and --every"),
        (["--every", "1m", "--catchup", "some"], 2, "catchup:"),
        (["--every", "1m", "--overlap", "never"], 2, "overlap:"),
        (["--every", "1m", "-p", "nope=1"], 2, "unknown parameter 'nope'"),
    ],
)
def test_refusals_are_one_line_naming_the_field_and_store_nothing(
    cli: Cli, word: str, args: list[str], code: int, message: str
) -> None:
    result = cli("schedules", "add", "s", "--template", word, "-p", "word=hi", *args)
    assert result.exit_code == code
    assert message in one_error_line(result)
    assert as_json(cli("schedules", "list", "--json")) == []


def test_an_unknown_template_a_missing_parameter_and_a_taken_name_are_refused(
    cli: Cli, word: str
) -> None:
    result = cli("schedules", "add", "s", "--template", "nope", "--every", "1m")
    assert result.exit_code == 3 and "unknown template 'nope'" in one_error_line(result)
    result = cli("schedules", "add", "s", "--template", word, "--every", "1m")
    assert result.exit_code == 2 and "missing required parameter 'word'" in one_error_line(result)
    add(cli, "s", "--every", "1m")
    result = cli("schedules", "add", "s", "--template", word, "-p", "word=x", "--every", "5m")
    assert result.exit_code == 2
    assert "name: a schedule 's' exists already" in one_error_line(result)
    assert [s["every"] for s in as_json(cli("schedules", "list", "--json"))] == ["1m"]


def test_no_such_schedule_exits_3(cli: Cli) -> None:
    for verb in ("show", "pause", "resume", "remove", "run", "run-missed", "skip-to-now"):
        result = cli("schedules", verb, "ghost")
        assert result.exit_code == 3, verb
        assert "no schedule 'ghost'" in one_error_line(result)


def test_a_secret_parameter_from_a_file_is_sealed_and_masked(
    cli: Cli, word: str, tmp_path: Path
) -> None:
    secret = tmp_path / "token.txt"
    secret.write_text("s3cr3t-value")
    view = add(cli, "s", "--every", "1h", "-p", f"token=@{secret}")
    assert view["params"] == {"word": "hi", "token": "***"}
    shown = cli("schedules", "show", "s")
    assert "s3cr3t-value" not in shown.stdout + shown.stderr
    typed = cli("schedules", "add", "t", "--template", word, "-p", "word=x", "-p",
                "token=typed-secret", "--every", "1h")  # fmt: skip
    assert "shell history" in ok(typed).stderr


def test_pause_resume_run_missed_skip_to_now_and_remove(
    cli: Cli, word: str, settings: Settings, clocked: OpsService
) -> None:
    add(cli, "s", "--every", "1h")
    assert ok(cli("schedules", "pause", "s")).stdout == "schedule s paused\n"
    assert as_json(cli("schedules", "show", "s", "--json"))["paused"] is True
    assert "paused" in ok(cli("schedules", "list")).stdout
    assert ok(cli("schedules", "resume", "s")).stdout.startswith("schedule s resumed; next fire")
    again = cli("schedules", "resume", "s")
    assert again.exit_code == 2 and "is not paused" in one_error_line(again)
    # the store was down for three hours: catch-up latest ran one, missed two
    later = datetime.now(UTC) + timedelta(hours=3, minutes=30)
    tick(clocked, later)
    ledger = as_json(cli("schedules", "show", "s", "--json"))["ledger"]
    assert [f["status"] for f in ledger] == ["fired", "missed", "missed"]
    shown = ok(cli("schedules", "show", "s")).stdout
    assert shown.count("the store or every worker was down") == 2
    ran = as_json(cli("schedules", "run-missed", "s", "--json"))
    assert len(ran) == 2 and {j["state"] for j in ran} == {"queued"}
    assert ok(cli("schedules", "run-missed", "s")).stdout == "schedule s: no missed fire to run\n"
    assert as_json(cli("schedules", "skip-to-now", "s", "--json")) == {
        "schedule": "s",
        "skipped": 0,
    }
    assert ok(cli("schedules", "remove", "s")).stdout == "schedule s removed\n"
    assert as_json(cli("schedules", "list", "--json")) == []


def test_run_wait_fires_now_and_exits_with_how_the_job_ended(
    cli: Cli, word: str, service: OpsService
) -> None:
    add(cli, "s", "--every", "1d")
    pool = WorkerPool(service, slots=1).start()
    try:
        job = as_json(cli("schedules", "run", "s", "--wait", "--json"))
    finally:
        pool.stop(grace=0.5)
    assert job["state"] == "succeeded"
    [fire] = as_json(cli("schedules", "show", "s", "--json"))["ledger"]
    assert fire["status"] == "fired" and fire["job_id"] == job["id"]
    assert fire["reason"].startswith("run by ")
    assert fire["job_state"] == "succeeded"


def test_removing_a_template_schedule_says_to_edit_the_template(
    cli: Cli, catalog: Path, clocked: OpsService
) -> None:
    write_template(
        catalog, "rotate", "runner: shell\ncommand: [echo]\nschedule: {cron: '@daily'}\n"
    )
    tick(clocked, clocked.now())
    result = cli("schedules", "remove", "rotate")
    assert result.exit_code == 2
    assert "remove its schedule: block from the template" in one_error_line(result)
    assert [s["origin"] for s in as_json(cli("schedules", "list", "--json"))] == ["template"]


def test_a_bad_template_schedule_block_is_a_catalog_problem_naming_the_key(
    cli: Cli, catalog: Path
) -> None:
    write_template(
        catalog, "rotate", "runner: shell\ncommand: [echo]\nschedule: {cron: '0 0 * * 9'}\n"
    )
    out = ok(cli("templates", "list"))  # a broken file is reported and skipped
    assert "schedule.cron: cron day-of-week: 9 is out of range 0-7" in out.stderr


def test_schedule_names_complete(cli: Cli, word: str, settings: Settings, tmp_path: Path) -> None:
    add(cli, "nightly", "--every", "1d")
    add(cli, "hourly", "--every", "1h")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}
    env.update(
        HOME=str(tmp_path / "user"),
        OPSCONSOLE_HOME=str(settings.home),
        OPSCONSOLE_DB=settings.db,
        OPSCONSOLE_CATALOG=str(settings.catalog),
        _OPSCONSOLE_COMPLETE="complete_bash",
        COMP_WORDS="opsconsole\nschedules\nshow\nn",
        COMP_CWORD="3",
    )
    out = subprocess.run(
        [str(Path(sys.executable).parent / "opsconsole")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout.split() == ["nightly"]


def test_audit_action_schedule_lists_a_schedules_life(cli: Cli, word: str) -> None:
    add(cli, "s", "--every", "1h")
    ok(cli("schedules", "pause", "s"))
    ok(cli("schedules", "resume", "s"))
    ok(cli("schedules", "remove", "s"))
    events = as_json(cli("audit", "--action", "schedule", "--json"))
    rows = events["events"] if isinstance(events, dict) else events
    assert sorted(e["kind"] for e in rows) == [
        "schedule.added",
        "schedule.paused",
        "schedule.removed",
        "schedule.resumed",
    ]
    assert {e["data"]["schedule"] for e in rows} == {"s"}


def test_every_schedules_command_has_an_uncut_summary_and_an_example(cli: Cli) -> None:
    group = ok(cli("schedules", "--help")).stdout.split("Commands:", 1)[1]
    assert "..." not in group
    for verb in ("add", "list", "show", "pause", "resume", "remove", "run", "run-missed",
                 "skip-to-now"):  # fmt: skip
        text = ok(cli("schedules", verb, "--help")).stdout
        assert f"opsconsole schedules {verb}" in text.split("Examples:", 1)[1]
