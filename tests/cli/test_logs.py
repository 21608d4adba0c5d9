"""``logs`` (plain text, neutralised, tail, follow) and ``events`` through the CLI."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from cli_support import as_json, ok, one_error_line, submit
from support import wait_until, write_template

from opsconsole.core.store.db import logs as logs_table


@pytest.fixture
def noisy(catalog):
    """Prints Rich markup and a colour escape sequence (printf's %b turns \\033 into ESC)."""
    write_template(
        catalog,
        "noisy",
        "runner: shell\n"
        "command: [printf, '%s\\n%b\\n%s\\n', '[bold]x[/bold]', '\\033[31mred\\033[0m', 'last']\n",
    )
    return "noisy"


@pytest.fixture
def slow(catalog):
    write_template(
        catalog, "slow", "runner: shell\ncommand: [sh, -c, 'echo start; sleep 1; echo end']\n"
    )
    return "slow"


def ran(cli, template, *args):
    job = submit(cli, template, *args)
    ok(cli("worker", "--once"))
    return job["id"]


def test_logs_print_job_output_verbatim_as_plain_text(cli, noisy):
    job = ran(cli, noisy)
    result = ok(cli("logs", job))
    lines = result.stdout.splitlines()
    assert lines[0].startswith("--- attempt 1 started on ")
    assert "[bold]x[/bold]" in lines  # markup is text, not style
    assert "red" in lines  # the worker strips escape sequences when it captures output
    assert "\x1b" not in result.stdout
    assert lines[-1] == "last"
    assert result.stderr == ""


def put_log_line(service, job, text):
    """A log line with control characters, straight into the store (whoever wrote it)."""
    with service.db.write() as conn:
        seq = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(logs_table.c.seq), 0)).where(
                logs_table.c.job_id == job
            )
        ).scalar()
        conn.execute(
            logs_table.insert().values(
                job_id=job, seq=seq + 1, ts=datetime.now(UTC), attempt=1, stream="out", line=text
            )
        )


def test_logs_neutralise_control_characters_unless_raw(cli, noisy, service):
    job = ran(cli, noisy)
    put_log_line(service, job, "\x1b[31mred\x1b[0m \x07bell\x9b2J\x9d8;;")
    result = ok(cli("logs", job))
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\x9b" not in result.stdout
    assert result.stdout.splitlines()[-1] == "\\x1b[31mred\\x1b[0m \\x07bell\\x9b2J\\x9d8;;"
    raw = ok(cli("logs", job, "--raw")).stdout
    assert raw.splitlines()[-1] == "\x1b[31mred\x1b[0m \x07bell\x9b2J\x9d8;;"


def test_logs_tail_prints_only_the_last_lines(cli, noisy):
    job = ran(cli, noisy)
    everything = ok(cli("logs", job)).stdout.splitlines()
    assert len(everything) > 2
    assert ok(cli("logs", job, "--tail", "2")).stdout.splitlines() == everything[-2:]
    assert ok(cli("logs", job, "-n", "1")).stdout.splitlines() == everything[-1:]
    assert ok(cli("logs", job, "--tail", "0")).stdout == ""
    assert ok(cli("logs", job, "--tail", "1000")).stdout.splitlines() == everything


def test_logs_tail_negative_is_refused(cli, noisy):
    job = submit(cli, noisy)["id"]
    one_error_line(ok(cli("logs", job, "--tail", "-1"), 2))


def test_logs_of_a_job_that_has_not_run_is_empty(cli, noisy):
    job = submit(cli, noisy)["id"]
    result = ok(cli("logs", job))
    assert (result.stdout, result.stderr) == ("", "")


def test_logs_follow_ends_when_the_job_ends(cli, slow, service, start_pool):
    job = submit(cli, slow)["id"]
    start_pool()
    wait_until(lambda: service.get(job).state.value == "running", timeout=10)
    done = threading.Event()
    box = {}

    def follow():
        box["result"] = cli("logs", job, "--follow")
        done.set()

    # a thread so a hang fails this test instead of the whole run
    threading.Thread(target=follow, daemon=True).start()
    assert done.wait(15), "logs --follow did not end with its job"
    lines = ok(box["result"]).stdout.splitlines()
    assert "start" in lines and "end" in lines
    assert lines.index("start") < lines.index("end")
    assert service.get(job).state.value == "succeeded"


def test_logs_follow_of_a_finished_job_returns_at_once(cli, noisy):
    job = ran(cli, noisy)
    assert "last" in ok(cli("logs", job, "-f")).stdout.splitlines()


def test_events_json_is_one_object_per_line(cli, echo, fails):
    a = submit(cli, echo)["id"]
    b = submit(cli, fails)["id"]
    ok(cli("worker", "--once"), 1)
    out = ok(cli("events", "--json")).stdout
    events = [json.loads(line) for line in out.splitlines()]
    assert {(e["job"], e["kind"]) for e in events} >= {
        (a, "submitted"),
        (a, "started"),
        (a, "succeeded"),
        (b, "submitted"),
        (b, "failed"),
    }
    assert list(events[0])[:4] == ["id", "job", "ts", "kind"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert all(e["ts"].endswith("Z") for e in events)


def test_events_for_one_job_and_a_limit(cli, echo):
    a = submit(cli, echo)["id"]
    b = submit(cli, echo)["id"]
    ok(cli("jobs", "cancel", b))
    mine = [json.loads(x) for x in ok(cli("events", "--job", a, "--json")).stdout.splitlines()]
    assert [(e["job"], e["kind"]) for e in mine] == [(a, "submitted")]
    last = [json.loads(x) for x in ok(cli("events", "--limit", "1", "--json")).stdout.splitlines()]
    assert [(e["job"], e["kind"]) for e in last] == [(b, "cancelled")]


def test_events_as_text(cli, echo):
    job = submit(cli, echo)["id"]
    [line] = ok(cli("events")).stdout.splitlines()
    assert job in line and "submitted" in line


def test_events_as_text_neutralise_control_characters(cli, echo):
    job = submit(cli, echo)["id"]
    ok(cli("jobs", "cancel", job, "--reason", "\x1b[2Jwiped\x9d"))
    out = ok(cli("events")).stdout
    assert "\x1b" not in out and "\x9d" not in out
    assert "\\x1b[2Jwiped\\x9d" in out


def test_events_of_an_unknown_job(cli):
    assert "zzzzzz" in one_error_line(ok(cli("events", "--job", "zzzzzz"), 3))


def test_logs_show_markup_in_parameters_as_text(cli, echo):
    job = ran(cli, echo, "-p", "msg=[red]not red[/red]")
    assert "[red]not red[/red]" in ok(cli("logs", job)).stdout.splitlines()
    assert as_json(cli("jobs", "show", job, "--json"))["params"] == {"msg": "[red]not red[/red]"}


def test_progress_reaches_jobs_show_and_stays_out_of_events(cli, catalog, start_pool, tmp_path):
    """Progress lives on the job's row: ``jobs show`` has it; the event stream has no ticks."""
    release = tmp_path / "release"
    write_template(
        catalog,
        "steps",
        "runner: shell\ncommand:\n  - sh\n  - -c\n  - |\n"
        "    for i in 1 2 3 4; do echo ::progress $((i * 10)) step $i; done\n"
        f"    while [ ! -e {release} ]; do sleep 0.02; done\n",
    )
    job = submit(cli, "steps")["id"]
    start_pool(1)
    shown = wait_until(
        lambda: (v := as_json(ok(cli("jobs", "show", job, "--json"))))["progress"] == 40 and v, 30
    )
    assert (shown["state"], shown["step"]) == ("running", "step 4")
    assert "40% step 4" in ok(cli("jobs", "show", job)).stdout
    release.touch()
    wait_until(lambda: as_json(ok(cli("jobs", "show", job, "--json")))["state"] == "succeeded", 30)
    out = ok(cli("events", "--job", job, "--json")).stdout
    kinds = [json.loads(line)["kind"] for line in out.splitlines()]
    assert kinds == ["submitted", "started", "succeeded"]


@pytest.mark.parametrize("isolate", ["true", "false"])
def test_a_python_handlers_exception_and_traceback_are_in_its_log(cli, catalog, handler, isolate):
    ref = handler(
        """
        def helper(hosts):
            raise ValueError(f"no route to {hosts[-1]}")

        def run(ctx):
            ctx.log("syncing")
            helper(["web1", ctx.params["token"]])
        """
    )
    write_template(
        catalog,
        "raises",
        f"runner: python\nhandler: '{ref}'\nisolate: {isolate}\n"
        "params:\n  token: {type: string, secret: true, default: tok-s3cret}\n",
    )
    job = submit(cli, "raises")
    ok(cli("worker", "--once"), 1)
    log = ok(cli("logs", job["id"])).stdout
    assert "syncing" in log
    assert "Traceback (most recent call last):" in log
    assert 'raise ValueError(f"no route to {hosts[-1]}")' in log
    assert "in helper" in log
    assert "ValueError: no route to ***" in log
    assert "tok-s3cret" not in log


def test_the_log_ends_with_why_an_attempt_did_not_succeed(cli, catalog):
    write_template(catalog, "gives-up", "runner: shell\ncommand: [sh, -c, 'echo trying; exit 4']\n")
    job = submit(cli, "gives-up")
    ok(cli("worker", "--once"), 1)
    lines = ok(cli("logs", job["id"])).stdout.splitlines()
    assert lines[-2:] == ["trying", "--- attempt 1 ended failed: exit code 4 ---"]
