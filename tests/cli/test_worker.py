"""``worker`` and ``workers list|resize`` through the CLI."""

from __future__ import annotations

import re
import subprocess

import pytest
from cli_support import as_json, installed, ok, one_error_line, submit
from support import stuck_in_a_system_call, unstick, wait_until, write_template


def states(cli):
    return sorted(j["state"] for j in as_json(cli("jobs", "list", "--json"))["jobs"])


def test_worker_once_exits_0_when_every_job_succeeds(cli, echo):
    submit(cli, echo)
    submit(cli, echo, "-p", "msg=two")
    ok(cli("worker", "--once"))
    assert states(cli) == ["succeeded", "succeeded"]


def test_worker_once_exits_1_when_a_job_fails(cli, echo, fails):
    submit(cli, echo)
    submit(cli, fails)
    ok(cli("worker", "--once", "--workers", "2"), 1)
    assert states(cli) == ["failed", "succeeded"]


def test_worker_once_with_nothing_to_do(cli, echo):
    later = submit(cli, echo, "--in", "1h")
    ok(cli("worker", "--once"))
    assert as_json(cli("jobs", "show", later["id"], "--json"))["state"] == "scheduled"


@pytest.mark.parametrize("n", ["0", "257"])
def test_worker_slots_out_of_range(cli, n):
    assert "--workers" in one_error_line(ok(cli("worker", "--once", "-w", n), 2))
    assert as_json(cli("workers", "list", "--all", "--json")) == {"workers": []}


def test_workers_list(cli, start_pool):
    pool = start_pool(slots=2)
    [worker] = as_json(cli("workers", "list", "--json"))["workers"]
    assert worker["id"] == pool.id
    assert (worker["slots"], worker["desired_slots"], worker["state"]) == (2, 2, "running")
    assert worker["alive"] is True
    assert worker["heartbeat_at"].endswith("Z")
    assert pool.id in ok(cli("workers", "list")).stdout


def test_workers_list_all_includes_stopped_workers(cli, echo):
    submit(cli, echo)
    ok(cli("worker", "--once"))
    assert as_json(cli("workers", "list", "--json")) == {"workers": []}
    [stopped] = as_json(cli("workers", "list", "--all", "--json"))["workers"]
    assert stopped["state"] == "stopped"
    assert stopped["alive"] is False


def test_workers_resize(cli, service, start_pool):
    pool = start_pool(slots=1)
    resized = as_json(cli("workers", "resize", pool.id[:-2], "3", "--json"))
    assert (resized["id"], resized["desired_slots"]) == (pool.id, 3)
    wait_until(lambda: service.workers()[0].slots == 3, timeout=10)
    assert "-> 2 slots" in ok(cli("workers", "resize", pool.id, "2")).stdout


def test_workers_resize_an_unknown_worker(cli):
    assert "no running worker" in one_error_line(ok(cli("workers", "resize", "nope", "3"), 3))


def test_workers_resize_to_zero_is_refused(cli, start_pool):
    pool = start_pool()
    one_error_line(ok(cli("workers", "resize", pool.id, "0"), 2))


def test_a_pool_that_cannot_work_is_unhealthy_in_workers_list_and_health(
    cli, catalog, service, start_pool, tmp_path
):
    """A handler stuck in a system call ignores cancellation and cannot be interrupted."""
    fifo = tmp_path / "fifo"
    stuck_in_a_system_call(catalog, fifo)
    job = submit(cli, "stuck")
    pool = start_pool(slots=1)
    try:
        wait_until(lambda: "abandoned" in (service.workers()[0].problem or ""), timeout=15)
        result = ok(cli("health"), 1)
        assert "abandoned handler thread" in result.stdout
        [worker] = as_json(cli("workers", "list", "--json"))["workers"]
        assert (worker["id"], worker["healthy"]) == (pool.id, False)
        assert "unhealthy" in ok(cli("workers", "list")).stdout
        assert as_json(cli("jobs", "show", job["id"], "--json"))["state"] == "timed_out"
    finally:
        unstick(fifo)
    wait_until(lambda: service.workers()[0].problem is None, timeout=15)
    ok(cli("health"))


def test_worker_once_prints_a_summary_by_outcome(cli, echo, fails, catalog):
    write_template(
        catalog, "half", "runner: shell\ncommand: [sh, -c, 'exit 3']\npartial_exit_codes: [3]\n"
    )
    for template in (echo, echo, fails, "half"):
        submit(cli, template)
    result = ok(cli("worker", "--once", "--workers", "2"), 1)
    assert result.stdout.splitlines()[-1] == "ran 4 jobs: 2 succeeded, 1 partial, 1 failed"


def test_worker_once_with_nothing_ready_says_so(cli):
    assert ok(cli("worker", "--once")).stdout == "ran no jobs: none was ready\n"


@pytest.mark.slow
def test_the_workers_log_has_one_line_per_job_start_and_end(settings, cli, echo, fails):
    """The installed command, as journalctl would see its stderr."""
    good, bad = submit(cli, echo), submit(cli, fails)
    argv = installed(
        settings,
        "worker",
        "--once",
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    log = done.stderr
    for job, template in ((good["id"], "echo"), (bad["id"], "fails")):
        assert re.search(
            rf"INFO opsconsole\.worker: job {job} \({template}\) started: attempt 1 ", log
        )
    assert re.search(
        rf"INFO opsconsole\.worker: job {good['id']} \(echo\) ended succeeded after \d+\.\ds\n", log
    ), log
    assert re.search(
        rf"WARNING opsconsole\.worker: job {bad['id']} \(fails\) ended failed after \d+\.\ds: "
        r"exit code 1\n",
        log,
    ), log
    assert done.stdout == "ran 2 jobs: 1 succeeded, 1 failed\n"
