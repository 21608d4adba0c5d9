"""Terraform instances and plans seeded as the Terraform runner writes them (no Terraform).

The runner records a plan with ``plans.add`` and an instance with ``instances.upsert``, and
parks a gated job in ``awaiting_approval`` with ``phase = 'apply'`` after its plan; these
helpers do the same through the same store functions.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from support import write_template

from opsconsole.core.store import instances as instance_store
from opsconsole.core.store import plans as plan_store
from opsconsole.core.store.db import jobs

WEB_APP = """description: A web app behind a URL
runner: terraform
terraform:
  module: terraform/web_app
  instance: "{{ app_name }}"
  vars: {size: "{{ size }}", token: "{{ token }}"}
params:
  app_name: {type: string, required: true}
  size: {type: integer, default: 1}
  token: {type: string, secret: true, required: true}
"""

API_SERVICE = """description: An API service, approved before it changes
runner: terraform
terraform:
  module: terraform/api_service
  instance: "{{ name }}"
params:
  name: {type: string, required: true}
  lb: {type: boolean, default: false}
approval:
  required: 2
  expires: 4h
"""

PLAN = {
    "add": 2,
    "change": 1,
    "destroy": 1,
    "replace": 1,
    "resources": [
        {"address": "terraform_data.web", "action": "create"},
        {"address": "terraform_data.dns", "action": "create"},
        {"address": "terraform_data.config", "action": "update"},
        {"address": "terraform_data.old_cache", "action": "delete"},
        {"address": "terraform_data.lb", "action": "replace"},
        {"address": "terraform_data.keep", "action": "no-op"},
    ],
    "outputs": {
        "url": {"action": "create", "sensitive": False},
        "admin_password": {"action": "create", "sensitive": True},
    },
}

DESTROY_PLAN = {
    "add": 0,
    "change": 0,
    "destroy": 2,
    "replace": 0,
    "resources": [
        {"address": "terraform_data.web", "action": "delete"},
        {"address": "terraform_data.dns", "action": "delete"},
    ],
    "outputs": {"url": {"action": "delete", "sensitive": False}},
}

HASH = "9f2c4e1a7b3d" + "0" * 52


def terraform_catalog(catalog: Path) -> None:
    """``web_app`` (no approval, a secret) and ``api_service`` (two approvers)."""
    for module in ("web_app", "api_service"):
        path = catalog / "terraform" / module
        path.mkdir(parents=True, exist_ok=True)
        (path / "main.tf").write_text('resource "terraform_data" "web" {}\n')
    write_template(catalog, "web_app", WEB_APP)
    write_template(catalog, "api_service", API_SERVICE)


def applied(
    service: Any,
    job_id: str,
    template: str,
    name: str,
    *,
    outputs: dict[str, Any] | None = None,
    status: str = "applied",
    serial: int = 3,
    problem: str | None = None,
) -> None:
    """An instance row as the runner leaves it after ``job_id`` applied."""
    instance_store.upsert(
        service.db,
        template,
        name,
        service.now(),
        status=status,
        last_job=job_id,
        serial=serial,
        plan_hash=HASH,
        outputs=outputs if outputs is not None else {"url": "http://shop.local", "size": 2},
        resources=["terraform_data.web", "terraform_data.dns"],
        problem=problem,
    )


def planned(
    service: Any, job_id: str, template: str, name: str, summary: Any = None, **kw: Any
) -> int:
    """A pending plan of ``job_id``, and the job parked for approval as the runner does."""
    plan = plan_store.add(
        service.db,
        job_id=job_id,
        attempt=1,
        round_=1,
        template=template,
        instance=name,
        hash_=kw.pop("hash_", HASH),
        summary=PLAN if summary is None else summary,
        file=f"/nonexistent/{job_id}.tfplan",
        now=service.now(),
    )
    park(service, job_id)
    return plan


def park(service: Any, job_id: str) -> None:
    """The job at its gate after the plan: awaiting approval, round 1, phase apply."""
    expires = service.now() + timedelta(hours=4)
    with service.db.write() as conn:
        conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(
                state="awaiting_approval",
                phase="apply",
                gate_round=sa.case((jobs.c.gate_round < 1, 1), else_=jobs.c.gate_round),
                approval_expires_at=expires,
            )
        )
