"""Guards on the shape of the code: a light CLI start-up, import contracts, a clean lint.

The seam between the faces and the domain is checked by machines, not by review.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

HEAVY = {
    "sqlalchemy",
    "sqlmodel",
    "textual",
    "ansible_runner",
    "python_terraform",
    "apscheduler",
    "alembic",
    "cryptography",
    "yaml",
}

PROBE = """
import json, sys
from opsconsole.cli.app import app
code = app(ARGS, standalone_mode=False)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in this environment")
    return path


@pytest.mark.parametrize(
    "args",
    [["--help"], ["submit", "--help"], ["jobs", "list", "--help"], ["worker", "--help"]],
    ids=" ".join,
)
def test_help_loads_no_heavy_module(args, tmp_path):
    code = PROBE.replace("ARGS", repr(args)).replace("HEAVY", repr(HEAVY))
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    *help_text, last = result.stdout.splitlines()
    probe = json.loads(last)
    assert "Usage:" in "\n".join(help_text)
    assert probe == {"code": 0, "heavy": []}


def test_import_contracts_hold():
    result = subprocess.run(
        [tool("lint-imports"), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_ruff_check_is_clean():
    result = subprocess.run(
        [tool("ruff"), "check", "--no-cache", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
