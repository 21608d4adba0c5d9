"""Helpers for the hosts grid tests: an Ansible job submitted through the service, claimed
and ended as a worker would, and cells written with ``core/store/hosts.record`` as the
Ansible runner writes them (the runner itself is not run: these tests need no Ansible)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from support import write_template

from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import hosts as host_store
from opsconsole.core.store import jobs as job_store

PLAY = "Check the site"


def ansible_template(catalog: Path, name: str = "site-ping") -> str:
    """A playbook template (the playbook file exists, though nothing runs it here)."""
    (catalog / "playbooks").mkdir(parents=True, exist_ok=True)
    (catalog / "playbooks" / "ping.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"
    )
    write_template(
        catalog,
        name,
        "description: Ping the site\nrunner: ansible\n"
        "ansible:\n  playbook: playbooks/ping.yml\n"
        "  inventory: {hosts: [web1, web2, db1]}\n",
    )
    return name


def shell_template(catalog: Path, name: str = "echo") -> str:
    write_template(catalog, name, "runner: shell\ncommand: [echo, hi]\n")
    return name


def started(service: OpsService, template: str) -> str:
    """Submit a job of ``template`` and claim it, as a worker starting attempt 1 does."""
    job = service.submit(SubmitRequest(template)).id
    row = claim_store.claim(service.db, "w1", service.now(), 30)
    assert row is not None and row["id"] == job
    return job


def cells(
    service: OpsService,
    job: str,
    *given: tuple[int, str, str] | tuple[int, str, str, str],
    attempt: int = 1,
    play: str = PLAY,
    tasks: Mapping[int, str] | None = None,
) -> None:
    """Write cells ``(seq, host, status[, msg])``; task names default to ``step N``."""
    now = service.now()
    out: list[dict[str, Any]] = []
    for cell in given:
        seq, host, status = cell[:3]
        msg = cell[3] if len(cell) > 3 else ""
        out.append(
            {
                "seq": seq,
                "host": host,
                "status": status,
                "msg": msg,
                "play": play,
                "task": (tasks or {}).get(seq, f"step {seq + 1}"),
                "started_at": now,
                "ended_at": None if status == "running" else now + timedelta(seconds=1),
            }
        )
    host_store.record(service.db, job, attempt, out)


def ended(
    service: OpsService,
    job: str,
    state: JobState,
    recap: Mapping[str, Mapping[str, int]] | None = None,
    *,
    attempt: int = 1,
) -> None:
    """End the attempt with the per-host recap in the result, as the Ansible runner does."""
    values: dict[str, Any] = {"exit_code": 0 if state == JobState.SUCCEEDED else 2}
    if recap is not None:
        values["result"] = {"recap": {h: dict(r) for h, r in recap.items()}}
    assert job_store.finish(service.db, job, attempt, state, service.now(), values=values)


def recap(ok: int = 0, changed: int = 0, failed: int = 0, unreachable: int = 0, skipped: int = 0,
          rescued: int = 0, ignored: int = 0) -> dict[str, int]:  # fmt: skip
    return {
        "ok": ok,
        "changed": changed,
        "failed": failed,
        "unreachable": unreachable,
        "skipped": skipped,
        "rescued": rescued,
        "ignored": ignored,
    }
