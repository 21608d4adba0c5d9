"""``jobs hosts``: the grid as a table that fits 80 columns, as JSON, and followed live."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_support import Cli, installed, ok, one_error_line
from hosts_support import ansible_template, cells, ended, recap, shell_template, started

from opsconsole.config import Settings
from opsconsole.core.hosts import SYMBOLS
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState

S = JobState


@pytest.fixture
def site(catalog: Path) -> str:
    return ansible_template(catalog)


@pytest.fixture
def partial_run(service: OpsService, site: str) -> str:
    """web1 changed, db1 failed on task 2, web2 unreachable; the job ended partial."""
    job = started(service, site)
    cells(
        service,
        job,
        (0, "web1", "ok"),
        (0, "web2", "unreachable", "Failed to connect to the host via ssh"),
        (0, "db1", "ok"),
        (1, "web1", "changed"),
        (1, "db1", "failed", "No package matching 'postgres-99'"),
        (2, "web1", "skipped"),
        tasks={0: "Gathering Facts", 1: "Install packages", 2: "Restart"},
    )
    ended(
        service,
        job,
        S.PARTIAL,
        {
            "web1": recap(ok=2, changed=1, skipped=1),
            "web2": recap(unreachable=1),
            "db1": recap(ok=1, failed=1),
        },
    )
    return job


def test_plain_table_pins_failures_and_ends_with_the_recap(cli: Cli, partial_run: str) -> None:
    out = ok(cli("jobs", "hosts", partial_run[:4])).stdout
    lines = out.splitlines()
    assert lines[0].startswith(f"{partial_run} site-ping · attempt 1 · partial")
    assert lines[1].split() == ["HOST", "1", "2", "3", "ok", "chg", "fail", "unr", "skip"]
    assert [ln.split()[:4] for ln in lines[2:5]] == [
        ["db1", "✓", "✗", "·"],
        ["web2", "!", "·", "·"],
        ["web1", "✓", "●", SYMBOLS["skipped"]],
    ]
    assert lines[2].split()[4:] == ["1", "0", "1", "0", "0"]
    assert "  2 Install packages" in out
    assert "✗ db1 · 2 Install packages: No package matching 'postgres-99'" in out
    assert "! web2 · 1 Gathering Facts: Failed to connect to the host via ssh" in out
    assert "✓ ok  ● changed  ✗ failed  ! unreachable" in out
    assert lines[-1] == (
        "recap: ok=3 changed=1 failed=1 unreachable=1 skipped=1 · 3 hosts, 3 tasks"
    )
    assert all(len(ln) <= 80 and ln == ln.rstrip() for ln in lines)


def test_many_tasks_collapse_to_the_last_ones_within_80_columns(
    cli: Cli, service: OpsService, site: str
) -> None:
    job = started(service, site)
    name = "a-rather-long-host-name-for-this-grid.example.com"
    cells(service, job, *[(seq, name, "ok") for seq in range(40)], (40, name, "running"))
    cells(service, job, *[(seq, "web1", "changed") for seq in range(41)])
    lines = ok(cli("jobs", "hosts", job)).stdout.splitlines()
    assert all(len(ln) <= 80 and ln == ln.rstrip() for ln in lines), lines
    header = lines[1].split()
    shown = [int(n) for n in header[1 : header.index("ok")]]
    assert shown[-1] == 41 and shown == list(range(shown[0], 42)) and len(shown) < 41
    assert f"showing tasks {shown[0]}-41 of 41: the first {shown[0] - 1} left out" in "\n".join(
        lines
    )
    assert lines[2].startswith("web1 ")  # it has changes: above the host with none
    assert lines[3].startswith("a-rather-long-host-name…")
    assert "task 41 of 41 running: step 41" in lines[0]
    assert lines[-1].startswith("so far: ok=81 changed=41 ")


def test_json_has_hosts_tasks_cells_recap_and_totals(cli: Cli, partial_run: str) -> None:
    data = json.loads(ok(cli("jobs", "hosts", partial_run, "--json")).stdout)
    assert [h["name"] for h in data["hosts"]] == ["db1", "web2", "web1"]
    assert [h["pinned"] for h in data["hosts"]] == [True, True, False]
    assert [t["name"] for t in data["tasks"]] == ["Gathering Facts", "Install packages", "Restart"]
    assert {(c["host"], c["seq"], c["status"]) for c in data["cells"]} >= {
        ("db1", 1, "failed"),
        ("web2", 0, "unreachable"),
    }
    assert data["recap"]["web1"] == recap(ok=2, changed=1, skipped=1)
    assert data["totals"] == recap(ok=3, changed=1, failed=1, unreachable=1, skipped=1)
    assert (data["state"], data["final"], data["totals_from"]) == ("partial", True, "recap")


def test_a_job_with_no_cells_yet_says_no_task_has_started(
    cli: Cli, service: OpsService, site: str
) -> None:
    job = service.submit(SubmitRequest(site)).id
    out = ok(cli("jobs", "hosts", job)).stdout
    assert "no task has started" in out.splitlines()[0]
    data = json.loads(ok(cli("jobs", "hosts", job, "--json")).stdout)
    assert (data["message"], data["hosts"], data["attempt"]) == ("no task has started", [], None)


def test_a_job_that_is_not_an_ansible_job_is_refused(
    cli: Cli, service: OpsService, catalog: Path
) -> None:
    job = service.submit(SubmitRequest(shell_template(catalog))).id
    result = cli("jobs", "hosts", job)
    assert result.exit_code == 2
    assert f"job {job} is not an Ansible job" in one_error_line(result)
    assert result.stdout == ""


def test_an_unknown_job_and_a_missing_attempt_are_refused(cli: Cli, partial_run: str) -> None:
    unknown = cli("jobs", "hosts", "zzzzzz")
    assert unknown.exit_code == 3
    one_error_line(unknown)
    missing = cli("jobs", "hosts", partial_run, "--attempt", "2")
    assert missing.exit_code == 2
    assert "has no attempt 2 (attempts: 1..1)" in one_error_line(missing)


def test_follow_prints_each_change_and_ends_with_the_job(
    settings: Settings, service: OpsService, site: str
) -> None:
    job = started(service, site)
    cells(service, job, (0, "web1", "running"))
    argv = installed(settings, "jobs", "hosts", job, "--follow", "--json")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["current_task"] == 0 and not first["final"]
        cells(service, job, (0, "web1", "ok"), (1, "web1", "changed"))
        second = json.loads(proc.stdout.readline())
        assert [c["status"] for c in second["cells"]] in (["ok"], ["ok", "changed"])
        ended(service, job, S.SUCCEEDED, {"web1": recap(ok=2, changed=1)})
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    last = json.loads(out.splitlines()[-1]) if out.strip() else second
    assert proc.returncode == 0, err
    assert last["final"] and last["totals_from"] == "recap"
    assert last["totals"]["changed"] == 1


def test_follow_of_an_ended_job_prints_once_and_returns(cli: Cli, partial_run: str) -> None:
    out = ok(cli("jobs", "hosts", partial_run, "--follow")).stdout
    assert out.count("recap: ") == 1


def test_completion_offers_the_job(settings: Settings, partial_run: str) -> None:
    import os

    words = ["opsconsole", "jobs", "hosts", partial_run[:3]]
    env = {
        **os.environ,
        "OPSCONSOLE_HOME": str(settings.home),
        "OPSCONSOLE_DB": settings.db,
        "OPSCONSOLE_CATALOG": str(settings.catalog),
        "_OPSCONSOLE_COMPLETE": "complete_bash",
        "COMP_WORDS": "\n".join(words),
        "COMP_CWORD": str(len(words) - 1),
    }
    argv = installed(settings)[:1]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert partial_run in result.stdout.split()
