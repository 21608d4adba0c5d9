"""The README stays true: its two commands, the CI script, the tables generated from code."""

from __future__ import annotations

import re
from pathlib import Path

from opsconsole.cli.exit_codes import ExitCode
from opsconsole.config import settings_table

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_opens_with_exactly_two_setup_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block is not None
    assert README.index("```sh") < README.index("\n## ")
    commands = [ln for ln in first_block.group(1).splitlines() if ln.strip()]
    assert len(commands) == 2
    assert commands[0].endswith("opsconsole")
    assert "test.sh" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    test_command = re.search(r"```sh\n.*?\n(.*?)\n```", README, re.S).group(1).strip()
    ci = (REPO / ".ci" / "run").read_text()
    assert test_command == "bash scripts/test.sh"
    assert "exec bash scripts/test.sh" in ci
    script = (REPO / "scripts" / "test.sh").read_text()
    assert "apt-get update" in script and "pytest" in script


def test_configuration_table_is_generated_from_settings() -> None:
    assert settings_table() in README


def test_every_exit_code_is_documented() -> None:
    section = README.split("### Exit codes", 1)[1].split("###", 1)[0]
    for code in ExitCode:
        assert re.search(rf"^\| {code.value} \|", section, re.M), code


def test_every_sample_template_is_walked_through() -> None:
    for path in sorted((REPO / "data" / "templates").glob("*.yaml")):
        assert f"`{path.stem}`" in README, path.stem
