"""Break-glass and its review across real OS accounts: the installed CLI run as each.

alice submits, bob (an operator) breaks the glass, and only carol (an approver, another
person) may acknowledge: bob's own acknowledgement is refused whatever ``USER`` says.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from os_users import Accounts, Host, made_accounts, needs_other_users, shared_host

from opsconsole.cli.exit_codes import ExitCode

TAG = f"ocbg{os.getpid() % 100000}"

pytestmark = needs_other_users


@pytest.fixture(scope="module")
def accounts() -> Iterator[Accounts]:
    with made_accounts(TAG) as acc:
        yield acc


@pytest.fixture
def host(accounts: Accounts) -> Iterator[Host]:
    fix = "runner: shell\ncommand: [echo, fixing]\napproval: {required: 1, break_glass: true}\n"
    with shared_host(accounts, {"fix": fix}) as shared:
        yield shared


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
