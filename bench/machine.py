"""The machine a benchmark ran on, in the one shape ``bench/report.py`` prints.

Every bench script records it next to its numbers: a figure means little without the CPU,
the cores and how loaded the machine was when the run began.
"""

from __future__ import annotations

import os
import platform
import sqlite3
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _ram_gb() -> float | None:
    try:
        return round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None


def describe(**extra: Any) -> dict[str, Any]:
    """CPU model, cores, RAM, kernel, Python, SQLite and the load at the start, plus ``extra``
    (versions of what the bench measured: Textual, the peers, the servers)."""
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "ram_gb": _ram_gb(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_1m": round(os.getloadavg()[0], 2),
        **extra,
    }
