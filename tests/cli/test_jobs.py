"""``submit`` and ``jobs list|show|cancel|retry|wait|after|priority`` through the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cli_support import as_json, ok, one_error_line, submit
from support import wait_until, write_template

from opsconsole.core.store.db import jobs as jobs_table

JOB_KEYS = [
    "id",
    "template",
    "state",
    "priority",
    "params",
    "attempts",
    "max_retries",
    "run_at",
    "depends_on",
    "tags",
    "dry_run",
    "submitted_by",
    "created_at",
    "started_at",
    "finished_at",
    "exit_code",
    "progress",
    "step",
    "result",
    "error",
    "worker",
    "can_cancel",
    "can_retry",
]


def parse_ts(text: str) -> datetime:
    assert text.endswith("Z"), text
    value = datetime.fromisoformat(text)
    assert value.utcoffset() == timedelta(0)
    return value


@pytest.fixture
def deploy(catalog):
    write_template(
        catalog,
        "deploy",
        "runner: shell\ncommand: ['true']\nenv: {TOKEN: '{{ token }}'}\n"
        "params:\n"
        "  app: {type: string, required: true}\n"
        "  token: {type: string, secret: true, required: true}\n",
    )
    return "deploy"


def test_submit_json_is_one_object_in_the_documented_shape(cli, deploy):
    result = ok(cli("submit", deploy, "-p", "app=web", "-p", "token=s3cr3t-value", "--json"))
    [text] = result.stdout.splitlines()
    job = json.loads(text)
    assert list(job)[: len(JOB_KEYS)] == JOB_KEYS
    assert job["template"] == "deploy"
    assert job["state"] == "queued"
    assert job["params"] == {"app": "web", "token": "***"}
    assert "s3cr3t-value" not in result.output
    for key in ("run_at", "created_at"):
        parse_ts(job[key])
    assert job["started_at"] is None and job["finished_at"] is None
    assert (job["can_cancel"], job["can_retry"]) == (True, False)
    [warning] = result.stderr.splitlines()  # a secret typed in clear: the one warning
    assert warning.startswith("opsconsole: warning: secret parameter 'token'")


def test_show_json_adds_the_events(cli, echo):
    job = submit(cli, echo, "-p", "msg=hello")
    shown = as_json(cli("jobs", "show", job["id"], "--json"))
    assert list(shown)[: len(JOB_KEYS)] == JOB_KEYS
    assert {k: shown[k] for k in JOB_KEYS} == {k: job[k] for k in JOB_KEYS}
    [event] = shown["events"]
    assert (event["job"], event["kind"], event["state"]) == (job["id"], "submitted", "queued")
    parse_ts(event["ts"])


def test_show_accepts_a_unique_prefix_and_prints_a_table(cli, echo):
    job = submit(cli, echo, "-p", "msg=hello")
    out = ok(cli("jobs", "show", job["id"][:4])).stdout
    assert job["id"] in out
    assert "param msg" in out and "hello" in out
    assert "submitted" in out  # the events table


def test_list_json_pages(cli, echo):
    ids = [submit(cli, echo, "-p", f"msg={i}")["id"] for i in range(5)]
    first = as_json(cli("jobs", "list", "--json", "--limit", "2"))
    assert set(first) == {"jobs", "total", "page", "page_size", "pages"}
    assert (first["total"], first["page"], first["page_size"], first["pages"]) == (5, 1, 2, 3)
    pages = [first] + [
        as_json(cli("jobs", "list", "--json", "--limit", "2", "--page", str(n))) for n in (2, 3)
    ]
    seen = [j["id"] for p in pages for j in p["jobs"]]
    assert [len(p["jobs"]) for p in pages] == [2, 2, 1]
    assert seen == ids[::-1]  # newest first, nothing twice
    beyond = as_json(cli("jobs", "list", "--json", "--limit", "2", "--page", "4"))
    assert (beyond["jobs"], beyond["total"]) == ([], 5)


def test_list_filters_by_state_template_tag_and_age(cli, echo, fails, service):
    a = submit(cli, echo, "--tag", "red")
    b = submit(cli, echo, "--tag", "blue")
    c = submit(cli, fails, "--tag", "red")
    ok(cli("jobs", "cancel", b["id"]))

    def ids(*args):
        return {j["id"] for j in as_json(cli("jobs", "list", "--json", *args))["jobs"]}

    assert ids("--state", "cancelled") == {b["id"]}
    assert ids("--state", "cancelled", "--state", "queued") == {a["id"], b["id"], c["id"]}
    assert ids("--template", "fails") == {c["id"]}
    assert ids("--tag", "red") == {a["id"], c["id"]}
    assert ids("--tag", "red", "--template", "echo") == {a["id"]}
    # age one job by two days in the store: --since counts back from now
    old = datetime.now(UTC) - timedelta(days=2)
    with service.db.write() as conn:
        conn.execute(jobs_table.update().where(jobs_table.c.id == a["id"]).values(created_at=old))
    assert ids("--since", "1d") == {b["id"], c["id"]}
    assert ids("--since", "3d") == {a["id"], b["id"], c["id"]}


def test_list_table_for_people(cli, echo):
    job = submit(cli, echo)
    out = ok(cli("jobs", "list")).stdout
    assert out.splitlines()[0].split()[:3] == ["ID", "TEMPLATE", "STATE"]
    assert job["id"] in out and "queued" in out


def test_submit_wait_exits_0_when_the_job_succeeds(cli, echo, start_pool):
    start_pool()
    result = ok(cli("submit", echo, "--wait", "--json"))
    job = json.loads(result.stdout)
    assert job["state"] == "succeeded"
    assert job["exit_code"] == 0
    parse_ts(job["finished_at"])


def test_submit_wait_exits_1_and_says_why_on_stderr_when_the_job_fails(cli, catalog, start_pool):
    write_template(
        catalog,
        "breaks",
        "runner: shell\ncommand: [sh, -c, 'echo copying; echo disk full >&2; exit 4']\n"
        "env: {TOKEN: '{{ token }}'}\n"
        "params:\n  token: {type: string, secret: true, default: ''}\n",
    )
    start_pool()
    result = ok(cli("submit", "breaks", "--wait", "-p", "token=copying"), 1)
    assert "failed" in result.stdout
    lines = result.stderr.splitlines()
    job = result.stdout.split()[0]
    assert f"opsconsole: job {job} (breaks) ended failed: exit code 4" in lines
    assert "opsconsole: last 2 log line(s):" in lines  # its output; the worker's notes are not
    assert "  disk full" in lines
    assert "  ***" in lines  # the secret's value, masked in the log, masked here
    assert "copying" not in result.stderr.replace("secret parameter", "")
    assert lines[-1] == f"opsconsole: whole log: opsconsole logs {job}"


def test_submit_wait_json_keeps_stdout_json_and_says_why_on_stderr(cli, fails, start_pool):
    start_pool()
    result = ok(cli("submit", fails, "--wait", "--json"), 1)
    assert json.loads(result.stdout)["state"] == "failed"
    assert "ended failed: exit code 1" in result.stderr


def test_jobs_wait_gives_up_after_its_timeout_with_its_own_exit_code(cli, echo):
    job = submit(cli, echo)
    result = ok(cli("jobs", "wait", job["id"], "--timeout", "1s", "--json"), 124)
    assert json.loads(result.stdout)["state"] == "queued"
    assert (
        f"opsconsole: gave up waiting after 1s: job {job['id']} is still queued "
        f"(wait again: opsconsole jobs wait {job['id']})"
    ) in result.stderr.splitlines()


def test_jobs_wait_on_a_failed_job_says_why(cli, fails):
    job = submit(cli, fails)
    ok(cli("worker", "--once"), 1)
    result = ok(cli("jobs", "wait", job["id"]), 1)
    assert f"job {job['id']} (fails) ended failed: exit code 1" in result.stderr


def test_cancel_of_a_running_job_says_what_happens_next(cli, catalog, service, start_pool):
    write_template(catalog, "sleeper", "runner: shell\ncommand: [sleep, '30']\n")
    start_pool()
    job = submit(cli, "sleeper")
    wait_until(lambda: service.get(job["id"]).state.value == "running", timeout=15)
    text = ok(cli("jobs", "cancel", job["id"])).stdout
    assert "cancellation requested: the worker sends the job's processes SIGTERM" in text
    assert "SIGKILL after 0.5s (kill_grace)" in text
    assert f"ends cancelled (watch it: opsconsole jobs wait {job['id']})" in text
    wait_until(lambda: service.get(job["id"]).state.value == "cancelled", timeout=15)


def test_cancel_json_of_a_running_job_is_the_job_alone(cli, catalog, service, start_pool):
    write_template(catalog, "sleeper", "runner: shell\ncommand: [sleep, '30']\n")
    start_pool()
    job = submit(cli, "sleeper")
    wait_until(lambda: service.get(job["id"]).state.value == "running", timeout=15)
    shown = as_json(cli("jobs", "cancel", job["id"], "--json"))
    assert list(shown)[: len(JOB_KEYS)] == JOB_KEYS
    assert (shown["state"], shown["cancel_requested"]) == ("running", True)


def test_piped_jobs_list_has_clean_rows_and_the_page_note_on_stderr(cli, echo):
    for i in range(3):
        submit(cli, echo, "-p", f"msg={i}", "--tag", "t" * (i + 1))
    result = ok(cli("jobs", "list", "--limit", "2"))
    rows = result.stdout.splitlines()
    assert len(rows) == 3  # the header and two jobs: nothing else on stdout
    assert all(row == row.rstrip() for row in rows), rows
    assert result.stderr == "opsconsole: page 1 of 2 (3 jobs)\n"
    assert ok(cli("jobs", "list", "--limit", "2", "--page", "2")).stdout.count("\n") == 2


def test_a_parameter_reads_a_file_whatever_its_kind(cli, echo, tmp_path):
    path = tmp_path / "msg.txt"
    path.write_text("from a file\n")
    job = submit(cli, echo, "-p", f"msg=@{path}")
    assert job["params"]["msg"] == "from a file"


def test_a_literal_at_sign_is_written_twice(cli, echo):
    assert submit(cli, echo, "-p", "msg=@@channel")["params"]["msg"] == "@channel"


def test_a_parameter_file_that_cannot_be_read_is_one_line(cli, echo, service):
    result = ok(cli("submit", echo, "-p", "msg=@/nonexistent/msg"), 2)
    assert "parameter 'msg': cannot read /nonexistent/msg" in one_error_line(result)
    assert not any(service.counts().values())


def test_two_parameters_cannot_both_read_stdin(cli, catalog):
    write_template(
        catalog,
        "two",
        "runner: shell\ncommand: [echo, '{{ a }}', '{{ b }}']\n"
        "params:\n  a: {type: string}\n  b: {type: string}\n",
    )
    result = ok(cli("submit", "two", "-p", "a=@-", "-p", "b=@-", input="x\n"), 2)
    assert "both read stdin" in one_error_line(result)


def test_a_secret_typed_in_clear_gets_one_warning_without_its_value(cli, deploy):
    result = ok(cli("submit", deploy, "-p", "app=web", "-p", "token=hunter2"))
    assert result.stderr == (
        "opsconsole: warning: secret parameter 'token' was given on the command line, where "
        "shell history and `ps` can keep it: use -p token=@FILE or -p token=@- (stdin), or "
        "leave it out to be asked without echo\n"
    )
    assert "hunter2" not in result.output


def test_a_secret_from_stdin_gets_no_warning(cli, deploy):
    result = ok(cli("submit", deploy, "-p", "app=web", "-p", "token=@-", input="hunter2\n"))
    assert result.stderr == ""


def test_at_in_the_past_runs_now_with_a_warning(cli, echo):
    result = ok(cli("submit", echo, "--at", "2020-01-01T00:00:00Z", "--json"))
    job = json.loads(result.stdout)
    assert job["state"] == "queued"
    assert result.stderr == (
        f"opsconsole: warning: --at 2020-01-01T00:00:00Z is in the past: job {job['id']} runs now\n"
    )


def test_at_in_the_future_is_scheduled_without_a_warning(cli, echo):
    when = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = ok(cli("submit", echo, "--at", when, "--json"))
    assert json.loads(result.stdout)["state"] == "scheduled"
    assert result.stderr == ""


def test_jobs_wait_on_a_finished_job_returns_at_once(cli, echo, fails):
    good, bad = submit(cli, echo), submit(cli, fails)
    ok(cli("worker", "--once"), 1)
    ok(cli("jobs", "wait", good["id"]))
    ok(cli("jobs", "wait", bad["id"]), 1)


def test_submit_in_schedules_for_later(cli, echo):
    job = submit(cli, echo, "--in", "10m")
    assert job["state"] == "scheduled"
    delay = parse_ts(job["run_at"]) - parse_ts(job["created_at"])
    assert abs(delay.total_seconds() - 600) < 1


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2030-01-02T03:04:05Z", "2030-01-02T03:04:05.000Z"),
        ("2030-01-02T03:04:05+02:00", "2030-01-02T01:04:05.000Z"),
        # no zone: the operator's local time
        ("2030-01-02T03:04", None),
    ],
)
def test_submit_at_schedules_at_that_time(cli, echo, given, expected):
    if expected is None:
        local = datetime.fromisoformat(given).astimezone().astimezone(UTC)
        expected = local.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    job = submit(cli, echo, "--at", given)
    assert job["state"] == "scheduled"
    assert job["run_at"] == expected


def test_submit_at_and_in_together_is_refused(cli, echo):
    result = ok(cli("submit", echo, "--at", "2030-01-01T00:00Z", "--in", "1h"), 2)
    assert "--at" in one_error_line(result)


def test_submit_after_waits_for_the_dependency(cli, echo):
    first = submit(cli, echo)
    second = submit(cli, echo, "--after", first["id"])
    assert second["state"] == "waiting"
    assert second["depends_on"] == [first["id"]]
    assert first["id"] in ok(cli("submit", echo, "--after", first["id"][:5])).stdout


def test_jobs_after_adds_dependencies_and_refuses_cycles(cli, echo):
    a, b = submit(cli, echo), submit(cli, echo)
    held = as_json(cli("jobs", "after", b["id"], a["id"], "--json"))
    assert held["depends_on"] == [a["id"]]
    assert held["state"] == "waiting"
    result = ok(cli("jobs", "after", a["id"], b["id"]), 2)
    assert "cycle" in one_error_line(result)
    assert as_json(cli("jobs", "show", a["id"], "--json"))["depends_on"] == []


def test_jobs_priority_changes_a_pending_job(cli, echo):
    job = submit(cli, echo)
    assert job["priority"] == 5
    changed = as_json(cli("jobs", "priority", job["id"], "high", "--json"))
    assert (changed["priority"], changed["priority_name"]) == (10, "high")
    assert as_json(cli("jobs", "priority", job["id"], "42", "--json"))["priority"] == 42
    ok(cli("worker", "--once"))
    result = ok(cli("jobs", "priority", job["id"], "low"), 2)
    one_error_line(result)


def test_cancel_a_queued_job_then_a_finished_one(cli, echo):
    job = submit(cli, echo)
    out = ok(cli("jobs", "cancel", job["id"], "--reason", "not today")).stdout
    assert job["id"] in out and "cancelled" in out
    shown = as_json(cli("jobs", "show", job["id"], "--json"))
    assert shown["state"] == "cancelled"
    assert shown["can_cancel"] is False
    assert "not today" in json.dumps(shown["events"])
    result = ok(cli("jobs", "cancel", job["id"]), 2)
    assert job["id"] in one_error_line(result)


def test_retry_a_failed_job_queues_it_again(cli, fails):
    job = submit(cli, fails)
    ok(cli("worker", "--once"), 1)
    assert as_json(cli("jobs", "show", job["id"], "--json"))["state"] == "failed"
    retried = as_json(cli("jobs", "retry", job["id"], "--json"))
    assert retried["state"] == "queued"
    assert retried["attempts"] == 1
    assert retried["error"] is None


def test_retry_of_a_succeeded_job_is_refused(cli, echo):
    job = submit(cli, echo)
    ok(cli("worker", "--once"))
    result = ok(cli("jobs", "retry", job["id"]), 2)
    assert "succeeded" in one_error_line(result)


def test_retry_needs_the_secret_parameters_again(cli, secret):
    job = submit(cli, secret, "-p", "token=t0ps3cret")
    ok(cli("worker", "--once"), 1)
    result = ok(cli("jobs", "retry", job["id"]), 2)
    assert "token" in one_error_line(result)
    assert as_json(cli("jobs", "show", job["id"], "--json"))["state"] == "failed"
    retried = as_json(cli("jobs", "retry", job["id"], "-p", "token=again", "--json"))
    assert retried["state"] == "queued"
    assert retried["params"] == {"token": "***"}


def test_retry_refuses_to_change_a_public_parameter(cli, deploy):
    job = submit(cli, deploy, "-p", "app=web", "-p", "token=x")
    ok(cli("jobs", "cancel", job["id"]))
    result = ok(cli("jobs", "retry", job["id"], "-p", "token=y", "-p", "app=db"), 2)
    assert "'app' is not secret" in one_error_line(result)


def test_retry_without_a_required_secret_says_how_to_give_it(cli, secret):
    job = submit(cli, secret, "-p", "token=t0ps3cret")
    ok(cli("worker", "--once"), 1)
    line = one_error_line(ok(cli("jobs", "retry", job["id"]), 2))
    assert "-p token=" in line


def test_show_neutralises_control_characters_in_untrusted_text(cli, echo):
    job = submit(cli, echo, "-p", "msg=\x1b]0;title\x07\x1b[31mred")
    ok(cli("jobs", "cancel", job["id"], "--reason", "\x1b[2Jgone\x9d"))
    out = ok(cli("jobs", "show", job["id"])).stdout
    assert not any(c in out for c in "\x1b\x07\x9d")
    assert "\\x1b]0;title\\x07\\x1b[31mred" in out  # the parameter, visible
    assert "\\x1b[2Jgone\\x9d" in out  # the error and the event message
    shown = as_json(cli("jobs", "show", job["id"], "--json"))
    assert shown["params"]["msg"] == "\x1b]0;title\x07\x1b[31mred"  # JSON keeps the value


def test_retry_a_partial_job_end_to_end(cli, catalog):
    """Some of its work failed: `jobs show` offers a retry and `jobs retry` runs it again."""
    write_template(
        catalog, "halfway", "runner: shell\ncommand: [sh, -c, 'exit 3']\npartial_exit_codes: [3]\n"
    )
    job = submit(cli, "halfway")
    ok(cli("worker", "--once"), 1)
    shown = as_json(cli("jobs", "show", job["id"], "--json"))
    assert (shown["state"], shown["can_retry"]) == ("partial", True)
    assert "retry" in ok(cli("jobs", "show", job["id"])).stdout
    retried = as_json(cli("jobs", "retry", job["id"], "--json"))
    assert (retried["state"], retried["error"]) == ("queued", None)
    ok(cli("worker", "--once"), 1)
    again = as_json(cli("jobs", "show", job["id"], "--json"))
    assert (again["state"], again["attempts"]) == ("partial", 2)
    assert [e["kind"] for e in again["events"]].count("retried") == 1


def test_piped_jobs_show_has_no_padding_after_its_values(cli, echo):
    job = submit(cli, echo, "-p", "msg=" + "x" * 150)  # one long row widens the whole grid
    rows = ok(cli("jobs", "show", job["id"])).stdout.splitlines()
    assert any("x" * 150 in row for row in rows)
    assert all(row == row.rstrip() for row in rows), [r for r in rows if r != r.rstrip()]
    started = [row for row in rows if row.startswith("started")]
    assert not any(row.endswith(" on None") for row in started)
