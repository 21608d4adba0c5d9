"""contrib/opsconsole-worker.service: a stop drains the worker, and systemd accepts the unit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from opsconsole.config import Settings

UNIT = Path(__file__).resolve().parents[1] / "contrib" / "opsconsole-worker.service"


def directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out[key].append(value)
    return out


def test_a_stop_lets_the_worker_drain_before_systemd_kills_anything() -> None:
    unit = directives()
    assert unit["ExecStart"][0].endswith("/opsconsole worker")
    assert unit["KillSignal"] == ["SIGTERM"]
    assert unit["KillMode"] == ["mixed"]  # TERM to the worker alone: jobs are its to stop
    defaults = Settings()
    assert float(unit["TimeoutStopSec"][0]) > defaults.drain_grace + defaults.kill_grace + 10
    assert unit["Restart"] == ["on-failure"]
    assert unit["Delegate"] == ["yes"]  # job cgroups under the service's own
    assert "ProtectControlGroups" not in unit
    assert any(v.startswith("OPSCONSOLE_HOME=") for v in unit["Environment"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "opsconsole"
    text = UNIT.read_text().replace("/opt/opsconsole/bin/opsconsole", str(exe))
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
