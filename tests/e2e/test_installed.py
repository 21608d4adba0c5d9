"""The installed ``opsconsole`` command in a real subprocess: entry point, start-up, exit codes.

These catch what in-process tests cannot: a broken console script, an import-time error,
slow start-up, and settings that only arrive through the environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import write_template

import opsconsole

TIMEOUT = 60


def installed() -> str:
    beside = Path(sys.executable).parent / "opsconsole"
    if beside.exists():
        return str(beside)
    found = shutil.which("opsconsole")
    if found is None:
        pytest.skip("the opsconsole command is not installed")
    return found


@pytest.fixture
def env(tmp_path, catalog):
    write_template(
        catalog,
        "greet",
        "runner: shell\ncommand: [echo, 'Hello, {{ name }}!']\n"
        "params:\n  name: {type: string, default: world}\n",
    )
    home = tmp_path / "e2e-home"
    return {
        **os.environ,
        "OPSCONSOLE_HOME": str(home),
        "OPSCONSOLE_DB": str(home / "store.db"),
        "OPSCONSOLE_CATALOG": str(catalog),
        "OPSCONSOLE_POLL_INTERVAL": "0.05",
    }


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_help_exits_0_without_opening_a_store(env):
    # how fast it starts is bench/cli_bench.py's to measure, not a test's
    result = run("--help", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: opsconsole")
    assert "submit" in result.stdout and "jobs" in result.stdout
    assert result.stderr == ""
    assert not Path(env["OPSCONSOLE_HOME"]).exists()


def test_python_dash_m_prints_the_version():
    result = subprocess.run(
        [sys.executable, "-m", "opsconsole", "--version"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"opsconsole {opsconsole.__version__}"


def test_submit_run_and_show_round_trip(env):
    submitted = run("submit", "greet", "-p", "name=e2e", "--json", env=env)
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["state"] == "queued"
    worker = run("worker", "--once", "--workers", "1", env=env)
    assert worker.returncode == 0, worker.stderr
    shown = run("jobs", "show", job["id"], "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    final = json.loads(shown.stdout)
    assert (final["id"], final["state"], final["exit_code"]) == (job["id"], "succeeded", 0)
    assert [e["kind"] for e in final["events"]] == ["submitted", "started", "succeeded"]
    logs = run("logs", job["id"], env=env)
    assert "Hello, e2e!" in logs.stdout.splitlines()
    assert Path(env["OPSCONSOLE_DB"]).is_file()


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["submit"], 2),
        (["submit", "greet", "--no-such-option"], 2),
        (["submit", "greet", "--retries", "x"], 2),
        (["submit", "greet", "-p", "name"], 2),
        (["submit", "no-such-template"], 3),
    ],
)
def test_bad_usage_exits_with_its_code_and_no_traceback(env, args, code):
    result = run(*args, env=env)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip()


def test_an_opsconsole_error_is_one_line(env):
    result = run("jobs", "show", "zzzzzz", env=env)
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        f"opsconsole: created a new store at {env['OPSCONSOLE_DB']}",  # the first command
        "opsconsole: error: no job matches 'zzzzzz'",
    ]
    assert result.stdout == ""
    again = run("jobs", "show", "zzzzzz", env=env)
    assert again.stderr == "opsconsole: error: no job matches 'zzzzzz'\n"
