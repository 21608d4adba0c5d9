"""Break-glass and its review across real OS accounts: the installed CLI run as each.

alice submits, bob (an operator) breaks the glass, and only carol (an approver, another
person) may acknowledge: bob's own acknowledgement is refused whatever ``USER`` says.
"""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.test_identity import Accounts, Host

from opsconsole.cli.exit_codes import ExitCode

TIMEOUT = 60
TAG = f"ocbg{os.getpid() % 100000}"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("runuser") is None,
    reason="needs root, useradd and runuser to act as other OS users",
)


@pytest.fixture(scope="module")
def accounts() -> Iterator[Accounts]:
    acc = Accounts(f"{TAG}ops", f"{TAG}alice", f"{TAG}bob", f"{TAG}carol")
    made: list[tuple[str, str]] = []
    try:
        subprocess.run(["groupadd", acc.group], check=True, capture_output=True, timeout=TIMEOUT)
        made.append(("groupdel", acc.group))
        for name in (acc.alice, acc.bob, acc.carol):
            subprocess.run(
                ["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", "-G", acc.group, name],
                check=True,
                capture_output=True,
                timeout=TIMEOUT,
            )
            made.append(("userdel", name))
        yield acc
    finally:
        for cmd, name in reversed(made):
            subprocess.run([cmd, name], capture_output=True, timeout=TIMEOUT, check=False)


@pytest.fixture
def host(accounts: Accounts) -> Iterator[Host]:
    base = Path(tempfile.mkdtemp(prefix="oc-glass-"))
    try:
        base.chmod(0o755)
        home = base / "state"
        home.mkdir()
        os.chown(home, -1, grp.getgrnam(accounts.group).gr_gid)
        home.chmod(0o2770)
        catalog = base / "catalog"
        (catalog / "templates").mkdir(parents=True)
        (catalog / "templates" / "fix.yaml").write_text(
            "name: fix\nrunner: shell\ncommand: [echo, fixing]\n"
            "approval: {required: 1, break_glass: true}\n"
        )
        for path in (catalog, catalog / "templates"):
            path.chmod(0o755)
        yield Host(base, home, catalog, accounts)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_break_glass_needs_another_persons_acknowledgement(host: Host) -> None:
    a = host.accounts
    host.write_config(
        f'[roles]\noperator = ["group:{a.group}"]\napprover = ["user:{a.bob}", "user:{a.carol}"]\n'
    )
    job = host.ok(a.alice, "submit", "fix")["id"]
    out = host.ok(a.bob, "approve", job, "--break-glass", "--reason", "site down")
    assert out["state"] == "queued"
    review = out["review"]
    [listed] = host.ok(a.carol, "reviews", "list")
    assert (listed["broken_by"], listed["acked_by"]) == (a.bob, None)

    # the breaker may not acknowledge, whatever USER/LOGNAME claim: exit 4, one line
    mine = host.cli(a.bob, "reviews", "ack", str(review), "--comment", "ok", pretend=a.carol)
    assert mine.returncode == ExitCode.FORBIDDEN, (mine.stdout, mine.stderr)
    assert mine.stderr.count("\n") == 1 and "Traceback" not in mine.stderr
    assert f"{a.bob} broke the glass on job {job}" in mine.stderr
    assert host.ok(a.carol, "reviews", "list")[0]["acked_by"] is None
    # an operator is not an approver: she may not acknowledge either
    hers = host.cli(a.alice, "reviews", "ack", str(review), "--comment", "ok")
    assert hers.returncode == ExitCode.FORBIDDEN
    assert "needs the approver role" in hers.stderr

    acked = host.ok(a.carol, "reviews", "ack", str(review), "--comment", "checked")
    assert (acked["acked_by"], acked["comment"]) == (a.carol, "checked")
    assert host.ok(a.carol, "reviews", "list") == []
    events = host.ok(a.carol, "audit", "--job", job)["events"]
    assert {(e["kind"], e["actor"]) for e in events} >= {
        ("break_glass", a.bob),
        ("review_acked", a.carol),
    }
