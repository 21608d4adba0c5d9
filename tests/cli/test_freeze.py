"""``freeze set|list|lift``, the frozen job's row in ``jobs list``/``jobs show``, exit codes."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
from cli_support import Cli, as_json, ok, one_error_line
from support import write_template

from opsconsole.config import Settings

ROOT_USER = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def plain(catalog: Path) -> str:
    write_template(catalog, "plain", "command: [echo, hi]\n")
    return "plain"


def test_set_list_show_and_lift(cli: Cli, plain: str) -> None:
    job = as_json(cli("submit", plain, "--tag", "nightly", "--json"))["id"]
    out = ok(cli("freeze", "set", "--tag", "nightly", "--reason", "db migration", "--until", "2h"))
    assert "freeze 1: tag nightly frozen until" in out.stdout
    listed = as_json(cli("freeze", "list", "--json"))
    assert [(f["id"], f["scope"], f["value"], f["status"]) for f in listed] == [
        (1, "tag", "nightly", "active")
    ]
    assert "db migration" in ok(cli("freeze", "list")).stdout
    row = ok(cli("jobs", "list")).stdout
    assert "queued (frozen: db migration (until" in row
    assert "frozen: db migration" in ok(cli("jobs", "show", job)).stdout
    assert as_json(cli("jobs", "show", job, "--json"))["frozen"].startswith("frozen: db migration")
    assert as_json(cli("freeze", "lift", "1", "--reason", "done", "--json"))["status"] == "lifted"
    assert as_json(cli("jobs", "show", job, "--json"))["frozen"] is None
    assert "no freeze is active" in ok(cli("freeze", "list")).stdout
    assert [f["status"] for f in as_json(cli("freeze", "list", "--all", "--json"))] == ["lifted"]
    trail = as_json(cli("audit", "--action", "freeze", "--json"))["events"]
    assert [(e["kind"], e["actor"]) for e in trail] == [
        ("freeze_lifted", ROOT_USER),
        ("freeze", ROOT_USER),
    ]


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["freeze", "set", "--all"], 2, "a freeze needs a reason"),
        (["freeze", "set", "--all", "--reason", ""], 2, "a freeze needs a reason"),
        (["freeze", "set", "--reason", "x"], 2, "exactly one of --all, --tag, --team or --key"),
        (["freeze", "set", "--all", "--key", "k", "--reason", "x"], 2, "exactly one of"),
        (["freeze", "set", "--all", "--reason", "x", "--until", "soon"], 2, "invalid --until"),
        (
            ["freeze", "set", "--all", "--reason", "x", "--until", "2020-01-01T00:00Z"],
            2,
            "must be in the future",
        ),
        (["freeze", "set", "--team", "nosuch", "--reason", "x"], 2, "no team 'nosuch'"),
        (["freeze", "lift", "abc"], 2, "a freeze id is a number"),
        (["freeze", "lift", "42"], 3, "no freeze 42"),
        (["jobs", "list", "--team", "Bad Team"], 2, "invalid team"),
    ],
)
def test_bad_input_is_one_line_with_its_exit_code_and_changes_nothing(
    cli: Cli, argv: list[str], code: int, message: str
) -> None:
    result = ok(cli(*argv), code)
    assert message in one_error_line(result)
    assert as_json(cli("freeze", "list", "--all", "--json")) == []


def test_lifting_twice_is_refused(cli: Cli) -> None:
    ok(cli("freeze", "set", "--all", "--reason", "x"))
    ok(cli("freeze", "lift", "1"))
    assert "already lifted" in one_error_line(ok(cli("freeze", "lift", "1"), 2))


def test_a_non_admin_is_refused_with_exit_4(cli: Cli, settings: Settings) -> None:
    toml = Path(settings.home) / "opsconsole.toml"
    toml.write_text(f'[roles]\noperator = ["user:{ROOT_USER}"]\n')
    toml.chmod(0o644)
    result = ok(cli("freeze", "set", "--all", "--reason", "x"), 4)
    assert "needs the admin role" in one_error_line(result)
    toml.unlink()
    assert as_json(cli("freeze", "list", "--all", "--json")) == []
