"""Identity from the login: the installed CLI run as real OS users on one shared store.

Accounts are made with ``useradd`` (the suite runs as root) and removed afterwards. Each
command runs through ``runuser`` with ``USER``/``LOGNAME`` set to someone else, to prove the
recorded actor is the account, never the environment.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsconsole.cli.exit_codes import ExitCode

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 60
TAG = f"oc{os.getpid() % 100000}"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("runuser") is None,
    reason="needs root, useradd and runuser to act as other OS users",
)


@dataclass(frozen=True)
class Accounts:
    group: str
    alice: str
    bob: str
    carol: str


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=TIMEOUT)


@pytest.fixture(scope="session")
def accounts() -> Iterator[Accounts]:
    """A shared group; alice and bob in it, carol in it too but in no team."""
    acc = Accounts(f"{TAG}ops", f"{TAG}alice", f"{TAG}bob", f"{TAG}carol")
    made: list[tuple[str, str]] = []
    try:
        _run("groupadd", acc.group)
        made.append(("groupdel", acc.group))
        for name in (acc.alice, acc.bob, acc.carol):
            _run("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", "-G", acc.group, name)
            made.append(("userdel", name))
        yield acc
    finally:
        for cmd, name in reversed(made):
            subprocess.run([cmd, name], capture_output=True, timeout=TIMEOUT, check=False)


def _command(user: str) -> list[str]:
    """The installed command as ``user`` can run it.

    When the test's interpreter lives where other accounts cannot reach it (a Python under
    /root), the same installed package runs on the system's Python of the same version.
    """
    script = Path(sys.executable).parent / "opsconsole"
    real = os.path.realpath(sys.executable)
    probe = subprocess.run(
        ["runuser", "-u", user, "--", "test", "-x", real], timeout=TIMEOUT, check=False
    )
    if probe.returncode == 0:
        return [str(script)]
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.access(system, os.X_OK):
        pytest.skip(f"{user} cannot run {real} and there is no {system}")
    return [system, "-m", "opsconsole"]


@dataclass
class Host:
    """One shared state directory, catalog and config; runs the CLI as any account."""

    base: Path
    home: Path
    catalog: Path
    accounts: Accounts

    def write_config(self, text: str) -> None:
        path = self.home / "opsconsole.toml"
        path.write_text(f'share_group = "{self.accounts.group}"\n{text}')
        path.chmod(0o644)  # root's, others may not write it

    def cli(self, user: str, *args: str, pretend: str = "") -> subprocess.CompletedProcess[str]:
        """Run ``opsconsole args`` as ``user``, with USER/LOGNAME claiming ``pretend``."""
        site = sysconfig.get_paths()["purelib"]
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": f"{REPO}:{site}",
            "OPSCONSOLE_HOME": str(self.home),
            "OPSCONSOLE_CATALOG": str(self.catalog),
            "USER": pretend or user,
            "LOGNAME": pretend or user,
            "HOME": str(self.base),
        }
        setenv = [f"{k}={v}" for k, v in env.items()]
        argv = ["runuser", "-u", user, "--", "env", "-i", *setenv, *_command(user), *args]
        return subprocess.run(
            argv,
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    def ok(self, user: str, *args: str, pretend: str = "") -> dict:
        out = self.cli(user, *args, "--json", pretend=pretend)
        assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
        return json.loads(out.stdout)


@pytest.fixture
def host(accounts: Accounts) -> Iterator[Host]:
    """A world-traversable base (tmp_path is root's alone) with a setgid group state dir."""
    base = Path(tempfile.mkdtemp(prefix="oc-identity-"))
    try:
        base.chmod(0o755)
        home = base / "state"
        home.mkdir()
        os.chown(home, -1, grp.getgrnam(accounts.group).gr_gid)
        home.chmod(0o2770)
        catalog = base / "catalog"
        (catalog / "templates").mkdir(parents=True)
        (catalog / "templates" / "deploy.yaml").write_text(
            "name: deploy\nrunner: shell\ncommand: [echo, deploying]\nteam: web\n"
        )
        (catalog / "templates" / "echo.yaml").write_text(
            "name: echo\nrunner: shell\ncommand: [echo, hi]\n"
        )
        for path in (catalog, catalog / "templates"):
            path.chmod(0o755)
        yield Host(base, home, catalog, accounts)
    finally:
        shutil.rmtree(base, ignore_errors=True)


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
