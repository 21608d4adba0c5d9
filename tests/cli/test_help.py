"""Help a person can use: only what is true, readable metavars, whole summaries, examples."""

from __future__ import annotations

import re

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from opsconsole.cli.app import app

DAILY = [
    ["submit"],
    ["jobs", "list"],
    ["jobs", "show"],
    ["jobs", "cancel"],
    ["jobs", "retry"],
    ["jobs", "wait"],
    ["logs"],
    ["templates", "list"],
    ["templates", "show"],
    ["worker"],
    ["health"],
]


def help_of(*path: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.stdout


def every_command() -> list[list[str]]:
    """Each command path under the root (groups included)."""
    out: list[list[str]] = []

    def walk(cmd, path: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            out.append([*path, name])
            walk(sub, [*path, name])

    walk(get_command(app), [])
    return out


def test_the_root_help_says_only_what_exists():
    text = help_of()
    assert "approve" in text and "reject" in text  # the approvals commands exist
    assert "submit, watch and audit jobs" in text


@pytest.mark.parametrize("path", every_command(), ids=" ".join)
def test_metavars_are_readable(path):
    text = help_of(*path)
    assert not re.search(r"<[a-z\[\]]+>", text), text  # <str>, <list[str]>, <int>
    assert not re.search(r"\{[A-Za-z_]+\}", text), text  # {template}


@pytest.mark.parametrize("group", [[], ["jobs"], ["workers"], ["templates"], ["db"]], ids=str)
def test_command_summaries_are_never_cut(group):
    commands = help_of(*group).split("Commands:", 1)[1]
    assert "..." not in commands, commands


@pytest.mark.parametrize("path", DAILY, ids=" ".join)
def test_each_daily_command_has_an_example(path):
    text = help_of(*path)
    examples = text.split("Examples:", 1)[1].split("Arguments:")[0].split("Options:")[0]
    assert f"opsconsole {' '.join(path)} " in examples or f"opsconsole {' '.join(path)}\n" in (
        examples
    ), text


def test_submit_names_its_parameters_as_a_person_would():
    text = help_of("submit")
    assert text.splitlines()[0] == "Usage: opsconsole submit [OPTIONS] TEMPLATE"
    assert "-p, --param KEY=VALUE" in text
    assert "--after JOB" in text
