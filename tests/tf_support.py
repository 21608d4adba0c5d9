"""Terraform test helpers: modules of built-in resources, a service per engine, a pool."""

from __future__ import annotations

import contextlib
import dataclasses
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from support import wait_until, write_template

from opsconsole.config import Settings
from opsconsole.core import instances
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import tfstate
from opsconsole.core.store.db import Database
from opsconsole.engine.pool import WorkerPool

S = JobState
ENGINES = ("binary", "embedded")

MODULES = Path(__file__).parent / "engine" / "tf_modules"
THREE = (MODULES / "three.tf").read_text()

PARAMS = """params:
  name: {type: string, required: true}
  fail_second: {type: boolean, default: false}
  pause: {type: integer, default: 0}
  token: {type: string, secret: true, default: ""}
"""
VARS = """  vars:
    name: "{{ name }}"
    fail_second: "{{ fail_second }}"
    pause: "{{ pause }}"
    token: "{{ token }}"
"""
GATE = "approval: {required: 1, self_approval: true, expires: 1h}\n"


def add_module(catalog: Path, name: str = "three", source: str = THREE) -> None:
    path = catalog / "terraform" / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "main.tf").write_text(textwrap.dedent(source))


def add_template(
    catalog: Path,
    name: str = "infra",
    *,
    gated: bool = True,
    extra: str = "",
    module: str = "three",
    instance: str = "{{ name }}",
) -> str:
    body = (
        "runner: terraform\n"
        f'terraform:\n  module: terraform/{module}\n  instance: "{instance}"\n'
        + VARS
        + extra
        + PARAMS
        + (GATE if gated else "")
    )
    write_template(catalog, name, body)
    return name


@contextlib.contextmanager
def engine_service(settings: Settings, engine: str) -> Iterator[OpsService]:
    chosen = dataclasses.replace(settings, terraform="embedded" if engine == "embedded" else "auto")
    db = Database(chosen.db)
    try:
        yield OpsService(chosen, db)
    finally:
        db.dispose()


@contextlib.contextmanager
def running_pool(service: OpsService, slots: int = 1) -> Iterator[WorkerPool]:
    pool = WorkerPool(service, slots=slots).start()
    try:
        yield pool
    finally:
        pool.stop(grace=2)


def submit(svc: OpsService, template: str, /, **params: Any) -> str:
    return svc.submit(SubmitRequest(template, params=params)).id


def state_of(service: OpsService, job: str) -> Callable[[], bool]:
    return lambda: service.get(job).state


def wait_state(service: OpsService, job: str, *states: JobState, timeout: float = 90) -> JobState:
    wait_until(lambda: service.get(job).state in states, timeout=timeout)
    return service.get(job).state


def log_text(service: OpsService, job: str) -> str:
    return "\n".join(line.text for line in service.logs_since(job, 0, limit=100000))


def instance_state(service: OpsService, template: str, name: str) -> dict[str, Any] | None:
    """The instance's Terraform state wherever this store keeps it (a file, or PostgreSQL)."""
    if tfstate.shared(service.db):
        return tfstate.read_state(service.db, template, name)
    return instances.read_state(instances.workspace(service.settings.home, template, name))


def instance_locked(service: OpsService, template: str, name: str) -> bool:
    if tfstate.shared(service.db):
        return tfstate.locked(service.db, template, name)
    return instances.locked(instances.workspace(service.settings.home, template, name))
