"""Identity from the login: the installed CLI run as real OS users on one shared store.

Accounts are made with ``useradd`` (the suite runs as root) and removed afterwards. Each
command runs through ``runuser`` with ``USER``/``LOGNAME`` set to someone else, to prove the
recorded actor is the account, never the environment.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from collections.abc import Iterator

import pytest
from os_users import Accounts, Host, made_accounts, needs_other_users, shared_host

from opsconsole.cli.exit_codes import ExitCode

TAG = f"oc{os.getpid() % 100000}"

pytestmark = needs_other_users


@pytest.fixture(scope="session")
def accounts() -> Iterator[Accounts]:
    """A shared group; alice and bob in it, carol in it too but in no team."""
    with made_accounts(TAG) as acc:
        yield acc


@pytest.fixture
def host(accounts: Accounts) -> Iterator[Host]:
    templates = {
        "deploy": "runner: shell\ncommand: [echo, deploying]\nteam: web\n",
        "echo": "runner: shell\ncommand: [echo, hi]\n",
    }
    with shared_host(accounts, templates) as shared:
        yield shared


def _refused(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == ExitCode.FORBIDDEN, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def _events(host: Host, user: str, job: str) -> list[dict]:
    return host.ok(user, "jobs", "show", job)["events"]


@pytest.mark.slow
def test_the_actor_is_the_login_whatever_user_and_logname_say(host: Host) -> None:
    a = host.accounts
    host.write_config(
        f'[roles]\noperator = ["group:{a.group}"]\n'
        f'[teams.web]\nmembers = ["user:{a.alice}", "user:{a.bob}"]\n'
    )
    job = host.ok(a.alice, "submit", "echo", pretend=a.bob)
    assert job["submitted_by"] == a.alice
    later = host.ok(a.bob, "submit", "deploy", "--in", "1h", pretend=a.alice)
    assert later["submitted_by"] == a.bob
    host.ok(a.bob, "jobs", "cancel", job["id"], pretend="root")
    cancelled = [e for e in _events(host, a.alice, job["id"]) if e["kind"] == "cancelled"]
    assert [e["actor"] for e in cancelled] == [a.bob]
    store = host.home / "opsconsole.db"
    assert pwd.getpwuid(store.stat().st_uid).pw_name == a.alice  # the first run made it
    assert grp.getgrgid(store.stat().st_gid).gr_name == a.group  # setgid: shared group


@pytest.mark.slow
def test_a_team_template_refuses_an_operator_outside_the_team(host: Host) -> None:
    a = host.accounts
    host.write_config(
        f'[roles]\noperator = ["group:{a.group}"]\nviewer = ["user:{a.carol}"]\n'
        f'[teams.web]\nmembers = ["user:{a.alice}"]\n'
    )
    job = host.ok(a.alice, "submit", "deploy", "--in", "1h")
    line = _refused(host.cli(a.bob, "jobs", "cancel", job["id"], pretend=a.alice))
    assert line == (
        f"opsconsole: error: {a.bob} may not cancel jobs of team web: needs the operator "
        f"role in team web ({a.bob} is not a member)"
    )
    refused = [e for e in _events(host, a.alice, job["id"]) if e["kind"] == "refused"]
    assert [(e["actor"], e["message"]) for e in refused] == [(a.bob, line.split(": ", 2)[2])]
    assert host.ok(a.alice, "jobs", "show", job["id"])["state"] == "scheduled"  # unchanged
    # an operator who is not in the team cannot submit it either, and nothing is stored
    line = _refused(host.cli(a.bob, "submit", "deploy"))
    assert "may not submit jobs of team web" in line
    assert host.ok(a.alice, "jobs", "list")["total"] == 1


@pytest.mark.slow
def test_without_roles_the_store_owner_is_admin_and_others_are_refused(host: Host) -> None:
    a = host.accounts
    host.write_config("")
    job = host.ok(a.alice, "submit", "echo", "--in", "1h")  # alice makes the store: she owns it
    line = _refused(host.cli(a.bob, "jobs", "cancel", job["id"], pretend=a.alice))
    assert line == (
        f"opsconsole: error: {a.bob} may not cancel jobs: opsconsole.toml has no [roles] "
        f"table, so only the store's owner ({a.alice}) may act"
    )
    host.ok(a.alice, "jobs", "cancel", job["id"])
    assert host.ok(a.bob, "jobs", "show", job["id"])["state"] == "cancelled"


@pytest.mark.slow
def test_four_eyes_the_submitter_cannot_approve_and_another_login_can(host: Host) -> None:
    a = host.accounts
    host.write_config(f'[roles]\napprover = ["group:{a.group}"]\n')
    (host.catalog / "templates" / "gated.yaml").write_text(
        "name: gated\nrunner: shell\ncommand: [echo, changing]\n"
        f'approval: {{required: 1, approvers: ["group:{a.group}"]}}\n'
    )
    job = host.ok(a.alice, "submit", "gated")
    assert job["state"] == "awaiting_approval"
    line = _refused(host.cli(a.alice, "approve", job["id"], pretend=a.bob))
    assert f"{a.alice} submitted job {job['id']} and may not approve it" in line
    assert host.ok(a.carol, "jobs", "show", job["id"])["state"] == "awaiting_approval"
    approved = host.ok(a.bob, "approve", job["id"], "--comment", "looks right", pretend=a.alice)
    assert approved["state"] == "queued"
    kinds = [(e["kind"], e["actor"]) for e in _events(host, a.alice, job["id"])]
    assert ("refused", a.alice) in kinds
    assert ("approved", a.bob) in kinds
