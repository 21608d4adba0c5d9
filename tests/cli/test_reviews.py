"""Break-glass and reviews from the command line; withdrawing a request; typed confirmation.

The acknowledgement by another person is proven with real second OS users in
``tests/e2e/test_break_glass.py``; here the caller is this process's account throughout.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_support import Cli, as_json, installed, ok, on_a_terminal, one_error_line
from support import submitted_by, write_template

from opsconsole.config import Settings
from opsconsole.core.identity import os_user
from opsconsole.core.service import OpsService, SubmitRequest

CONFIRMED = (
    "command: [echo, '{{ env }}']\nconfirm: '{{ env }}'\n"
    "params:\n  env: {type: choice, choices: [staging, production], required: true}\n"
)


@pytest.fixture
def templates(catalog: Path) -> None:
    write_template(catalog, "glass", "command: [echo, hi]\napproval: {break_glass: true}\n")
    write_template(catalog, "shut", "command: [echo, hi]\napproval: {required: 1}\n")
    write_template(catalog, "deploy", CONFIRMED)


def by_alice(service: OpsService, template: str) -> str:
    return submitted_by(service, SubmitRequest(template), "alice")


def test_break_glass_runs_the_job_and_lists_a_review(
    cli: Cli, service: OpsService, templates: None
) -> None:
    job = by_alice(service, "glass")
    out = as_json(cli("approve", job, "--break-glass", "--reason", "site down", "--json"))
    assert out["state"] == "queued"
    shown = as_json(cli("jobs", "show", job, "--json"))
    assert shown["break_glass"] is True  # the job itself says it ran past its gate
    assert "break-glass" in ok(cli("jobs", "show", job)).stdout
    [review] = as_json(cli("reviews", "list", "--json"))
    assert (review["id"], review["job_id"], review["broken_by"]) == (out["review"], job, os_user())
    assert review["reason"] == "site down" and review["acked_by"] is None
    assert job in ok(cli("reviews", "list")).stdout
    # the one who broke the glass may not acknowledge it: exit 4, one line
    result = ok(cli("reviews", "ack", str(review["id"]), "--comment", "fine"), 4)
    assert f"{os_user()} broke the glass on job {job}" in one_error_line(result)
    assert as_json(cli("reviews", "list", "--json"))[0]["acked_by"] is None
    assert as_json(cli("audit", "--action", "break_glass", "--json"))["events"][0]["job"] == job


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["approve", "{shut}", "--break-glass", "--reason", "x"], 4, "does not allow break-glass"),
        (["approve", "{glass}", "--break-glass"], 2, "a reason is required"),
        (["approve", "{glass}", "--break-glass", "--reason", " "], 2, "a reason is required"),
        (["approve", "{glass}", "--reason", "x"], 2, "--reason goes with --break-glass"),
        (["reviews", "ack", "99", "--comment", "x"], 3, "no review 99"),
        (["reviews", "ack", "99"], 2, "a comment is required"),
    ],
)
def test_bad_break_glass_input_is_one_line_and_changes_nothing(
    cli: Cli,
    service: OpsService,
    templates: None,
    argv: list[str],
    code: int,
    message: str,
) -> None:
    glass, shut = by_alice(service, "glass"), by_alice(service, "shut")
    result = ok(cli(*[a.format(glass=glass, shut=shut) for a in argv]), code)
    assert message in one_error_line(result)
    assert service.get(glass).state.value == "awaiting_approval"
    assert service.get(shut).state.value == "awaiting_approval"
    assert service.reviews(include_acked=True) == []


def test_jobs_cancel_withdraws_your_own_request_and_refuses_anyone_elses(
    cli: Cli, service: OpsService, templates: None
) -> None:
    mine = service.submit(SubmitRequest("shut")).id
    out = as_json(cli("jobs", "cancel", mine, "--json"))
    assert out["state"] == "rejected"
    assert out["error"]["message"] == f"withdrawn by {os_user()}"
    theirs = by_alice(service, "shut")
    result = ok(cli("jobs", "cancel", theirs), 4)
    assert f"opsconsole reject {theirs} --reason" in one_error_line(result)
    assert service.get(theirs).state.value == "awaiting_approval"


# -- typed confirmation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], 'asks for a typed confirmation: type "production"'),
        (["--confirm", "staging"], "the confirmation does not match"),
        (["--confirm", "Production"], "the confirmation does not match"),
    ],
)
def test_a_script_needs_the_matching_confirm_value(
    cli: Cli, service: OpsService, templates: None, extra: list[str], message: str
) -> None:
    result = ok(cli("submit", "deploy", "-p", "env=production", *extra), 2)
    assert message in one_error_line(result)
    assert service.counts().get("queued", 0) == 0


def test_a_script_with_the_right_value_submits(
    cli: Cli, service: OpsService, templates: None
) -> None:
    out = as_json(
        cli("submit", "deploy", "-p", "env=production", "--confirm", "production", "--json")
    )
    assert out["state"] == "queued"


@pytest.mark.slow
@pytest.mark.parametrize(("typed", "code"), [(b"staging", 2), (b"production", 0)])
def test_a_terminal_asks_for_the_rendered_value(
    settings: Settings, service: OpsService, templates: None, typed: bytes, code: int
) -> None:
    argv = installed(settings, "submit", "deploy", "-p", "env=production")
    seen, exit_code, answered = on_a_terminal(
        argv, b'type "production" to confirm:', lambda fd: os.write(fd, typed + b"\n"), timeout=60
    )
    assert answered, seen
    assert exit_code == code, seen
    assert b"Traceback" not in seen
    assert service.counts().get("queued", 0) == (1 if code == 0 else 0)
