"""The approvals commands: list, approve, reject; exit codes; two deciders at once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from cli_support import Cli, as_json, installed, ok, one_error_line
from support import submitted_by, wait_until, write_template

from opsconsole.config import Settings
from opsconsole.core.service import OpsService, SubmitRequest

POLICY = "command: [echo, hi]\napproval: {required: 1}\n"


@pytest.fixture
def gated(catalog: Path) -> str:
    write_template(catalog, "gated", POLICY)
    write_template(catalog, "mine", "command: [echo, hi]\napproval: {self_approval: false}\n")
    write_template(catalog, "plain", "command: [echo, hi]\n")
    return "gated"


def by_alice(service: OpsService, template: str = "gated") -> str:
    return submitted_by(service, SubmitRequest(template), "alice")


def test_list_approve_and_reject(cli: Cli, service: OpsService, gated: str) -> None:
    one, two = by_alice(service), by_alice(service)
    listed = as_json(cli("approvals", "list", "--json"))
    assert [(r["id"], r["approvals"], r["required"]) for r in listed] == [(one, 0, 1), (two, 0, 1)]
    assert one in ok(cli("approvals", "list")).stdout
    assert as_json(cli("approve", one, "--comment", "ok", "--json"))["state"] == "queued"
    out = as_json(cli("reject", two, "--reason", "not today", "--json"))
    assert out["state"] == "rejected"
    assert "no job is awaiting approval" in ok(cli("approvals", "list")).stdout


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["reject", "{job}"], 2, "a reason is required"),
        (["reject", "{job}", "--reason", " "], 2, "a reason is required"),
        (["approve", "{plain}"], 2, "asks for no approval"),
        (["approve", "{mine}"], 4, "may not approve it"),
        (["approve", "zzzzzz"], 3, "no job"),
    ],
)
def test_refusals_are_one_line_with_their_exit_code_and_change_nothing(
    cli: Cli, service: OpsService, gated: str, argv: list[str], code: int, message: str
) -> None:
    job = by_alice(service)
    plain = by_alice(service, "plain")
    mine = service.submit(SubmitRequest("mine")).id
    args = [a.format(job=job, plain=plain, mine=mine) for a in argv]
    result = ok(cli(*args), code)
    assert message in one_error_line(result)
    assert service.get(job).state.value == "awaiting_approval"
    assert service.get(mine).state.value == "awaiting_approval"
    assert service.get(plain).state.value == "queued"


def test_approving_a_decided_job_exits_2(cli: Cli, service: OpsService, gated: str) -> None:
    job = by_alice(service)
    ok(cli("approve", job))
    assert "it is queued, not awaiting approval" in one_error_line(ok(cli("approve", job), 2))


def _has_open(pid: int, path: Path) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return True  # it ended already
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
        except OSError:
            continue
    return False


@pytest.mark.slow
def test_concurrent_approve_and_reject_from_two_processes_decide_once(
    settings: Settings, service: OpsService, gated: str, db_path: Path
) -> None:
    for _ in range(3):
        job = by_alice(service)
        lock = sqlite3.connect(db_path, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # both deciders queue behind this writer
        procs = [
            subprocess.Popen(
                installed(settings, *argv, "--json"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for argv in (["approve", job], ["reject", job, "--reason", "no"])
        ]
        try:
            pids = [p.pid for p in procs]
            wait_until(lambda pids=pids: all(_has_open(p, db_path) for p in pids), timeout=60)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        results = [p.communicate(timeout=120) for p in procs]
        codes = sorted(p.returncode for p in procs)
        assert codes == [0, 2], results
        state = service.get(job).state.value
        assert state in ("queued", "rejected")
        decisions = service.approval_decisions(job)
        assert len(decisions) == 1
        assert decisions[0]["decision"] == ("approve" if state == "queued" else "reject")
        loser = results[[p.returncode for p in procs].index(2)][1]
        assert f"job {job}: it is {state}, not awaiting approval" in loser
