"""Real OS accounts for the tests where identity matters: made with ``useradd``, removed after.

The installed CLI runs as each account through ``runuser`` on one shared store (a group-owned,
setgid state directory), with ``USER``/``LOGNAME`` claiming someone else, so a test proves
the recorded actor is the login, never the environment.
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 60
CAN_ACT_AS_OTHERS = (
    os.geteuid() == 0
    and shutil.which("useradd") is not None
    and shutil.which("runuser") is not None
)
needs_other_users = pytest.mark.skipif(
    not CAN_ACT_AS_OTHERS, reason="needs root, useradd and runuser to act as other OS users"
)


@dataclass(frozen=True)
class Accounts:
    group: str
    alice: str
    bob: str
    carol: str


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=TIMEOUT)


@contextmanager
def made_accounts(tag: str) -> Iterator[Accounts]:
    """A shared group, and alice, bob and carol in it; all removed afterwards."""
    acc = Accounts(f"{tag}ops", f"{tag}alice", f"{tag}bob", f"{tag}carol")
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
            argv, cwd=self.base, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )

    def ok(self, user: str, *args: str, pretend: str = "") -> dict:
        out = self.cli(user, *args, "--json", pretend=pretend)
        assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
        return json.loads(out.stdout)


@contextmanager
def shared_host(accounts: Accounts, templates: Mapping[str, str]) -> Iterator[Host]:
    """A world-traversable base (pytest's tmp_path is root's alone) with a setgid group state
    directory and a catalog of ``templates`` (name -> YAML body without the name line)."""
    base = Path(tempfile.mkdtemp(prefix="oc-users-"))
    try:
        base.chmod(0o755)
        home = base / "state"
        home.mkdir()
        os.chown(home, -1, grp.getgrnam(accounts.group).gr_gid)
        home.chmod(0o2770)
        catalog = base / "catalog"
        (catalog / "templates").mkdir(parents=True)
        for name, body in templates.items():
            (catalog / "templates" / f"{name}.yaml").write_text(f"name: {name}\n{body}")
        for path in (catalog, catalog / "templates"):
            path.chmod(0o755)
        yield Host(base, home, catalog, accounts)
    finally:
        shutil.rmtree(base, ignore_errors=True)
