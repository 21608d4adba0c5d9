"""The Terraform runner on real Terraform (the binary on PATH and the embedded engine):
plan -> park -> approve -> apply of exactly that plan, stale plans, plan_only, destroy."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import wait_until
from tf_support import (
    ENGINES,
    add_module,
    add_template,
    engine_service,
    log_text,
    running_pool,
    submit,
    wait_state,
)

from opsconsole.config import Settings
from opsconsole.core import instances
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.store import instances as instance_store
from opsconsole.core.store import plans as plan_store

S = JobState
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("engine", ENGINES)
def test_plan_parks_then_the_approved_plan_is_applied(
    settings: Settings, catalog: Path, engine: str
) -> None:
    add_module(catalog)
    add_template(catalog)
    with engine_service(settings, engine) as svc, running_pool(svc):
        job = submit(svc, "infra", name="shop")
        assert svc.get(job).state == S.QUEUED  # it plans before anyone approves
        assert wait_state(svc, job, S.AWAITING_APPROVAL, S.FAILED) == S.AWAITING_APPROVAL
        plan = plan_store.latest(svc.db, job)
        assert plan is not None and plan["status"] == "pending"
        assert plan["summary"]["add"] == 3
        assert {r["address"] for r in plan["summary"]["resources"]} == {
            "terraform_data.first",
            "terraform_data.second",
            "terraform_data.third",
        }
        assert plan["summary"]["outputs"]["secret_url"]["sensitive"] is True
        ws = instances.workspace(settings.home, "infra", "shop")
        assert not (ws / "first.txt").exists()  # nothing applied before the approval
        svc.approve(job)
        assert wait_state(svc, job, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED
        applied = plan_store.latest(svc.db, job)
        assert applied is not None and applied["id"] == plan["id"]
        assert applied["status"] == "applied"
        row = instance_store.get(svc.db, "infra", "shop")
        assert row is not None and row["status"] == "applied" and row["last_job"] == job
        assert row["plan_hash"] == plan["hash"] and row["serial"]
        assert row["outputs"] == {"url": "http://shop.test", "secret_url": "***"}
        assert len(row["resources"]) == 3
        assert (ws / "third.txt").read_text().strip() == "third"
        text = log_text(svc, job)
        assert "terraform_data.first: Creation complete" in text
        assert '"@message"' not in text  # readable lines, not Terraform's JSON
        view = svc.get(job)
        assert view.progress == 100


def test_an_approval_of_another_plan_never_opens_the_gate(
    settings: Settings, catalog: Path
) -> None:
    add_module(catalog)
    add_template(catalog)
    with engine_service(settings, "binary") as svc:
        with running_pool(svc):
            job = submit(svc, "infra", name="gate")
            wait_state(svc, job, S.AWAITING_APPROVAL)
        plan = plan_store.latest(svc.db, job)
        assert plan is not None
        # the approver is shown another plan than the one on disk: its approval is of that one
        with svc.db.write() as conn:
            conn.exec_driver_sql("UPDATE plans SET hash = ? WHERE id = ?", ("0" * 64, plan["id"]))
        svc.approve(job)
        with svc.db.write() as conn:
            conn.exec_driver_sql(
                "UPDATE plans SET hash = ? WHERE id = ?", (plan["hash"], plan["id"])
            )
        with running_pool(svc):
            wait_until(lambda: "refused" in kinds(svc, job), 60)
        assert svc.get(job).state == S.AWAITING_APPROVAL
        assert not (instances.workspace(settings.home, "infra", "gate") / "first.txt").exists()


def kinds(svc: OpsService, job: str) -> list[str]:
    return [e.kind for e in svc.get(job, with_events=True).events or ()]
