"""Helpers for the Ansible runner tests: sample playbooks in the test catalog, job reads."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from support import wait_until, write_template

from opsconsole.core.service import OpsService
from opsconsole.core.states import FINAL
from opsconsole.core.store import hosts as host_store
from opsconsole.core.views import JobView

REPO = Path(__file__).resolve().parents[1]


def with_samples(catalog: Path) -> None:
    """The sample playbooks (data/ansible) in the test's catalog."""
    shutil.copytree(REPO / "data" / "ansible", catalog / "ansible", dirs_exist_ok=True)


def playbook(catalog: Path, name: str, text: str) -> str:
    path = catalog / "ansible" / f"{name}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return f"ansible/{name}.yml"


def local_hosts(*names: str) -> str:
    """An inline inventory block (YAML, indented for ``ansible:``) of local hosts."""
    rows = "".join(f"      {n}: {{ansible_connection: local}}\n" for n in names)
    return f"  inventory:\n    hosts:\n{rows}"


def ansible_template(catalog: Path, name: str, body: str, top: str = "") -> None:
    write_template(catalog, name, f"runner: ansible\n{top}ansible:\n{body}")


def final(service: OpsService, job_id: str, timeout: float = 120.0) -> JobView:
    return wait_until(lambda: (v := service.get(job_id)).state in FINAL and v, timeout, 0.1)


def out_lines(service: OpsService, job_id: str) -> list[str]:
    return [ln.text for ln in service.logs_since(job_id) if ln.stream != "meta"]


def cells(service: OpsService, job_id: str, attempt: int = 1) -> list[dict[str, Any]]:
    return [dict(r) for r in host_store.grid(service.db, job_id, attempt)]


def marked_pids(marker: str) -> list[int]:
    from opsconsole.engine.procs import find_marked

    return find_marked(marker)


def cmdlines() -> list[bytes]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes())
    return out
