"""The Terraform runner on real Terraform (the binary on PATH and the embedded engine):
plan -> park -> approve -> apply of exactly that plan, stale plans, plan_only, destroy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import sql, wait_until
from tf_support import (
    ENGINES,
    add_module,
    add_template,
    engine_service,
    instance_state,
    log_text,
    running_pool,
    submit,
    wait_state,
)

from opsconsole.config import Settings
from opsconsole.core import instances
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import instances as instance_store
from opsconsole.core.store import plans as plan_store

S = JobState
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("engine", ENGINES)
def test_plan_parks_then_the_approved_plan_is_applied(
    settings: Settings, catalog: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(catalog / "missing.tfrc"))  # as on this host
    add_module(catalog)
    add_template(catalog)
    with engine_service(settings, engine) as svc, running_pool(svc):
        submitted = svc.submit(SubmitRequest("infra", params={"name": "shop"}))
        assert submitted.state == S.QUEUED  # it plans before anyone approves
        job = submitted.id
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
        assert "CLI configuration" not in text
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
            sql(conn, "UPDATE plans SET hash = ? WHERE id = ?", ("0" * 64, plan["id"]))
        svc.approve(job)
        with svc.db.write() as conn:
            sql(conn, "UPDATE plans SET hash = ? WHERE id = ?", (plan["hash"], plan["id"]))
        with running_pool(svc):
            wait_until(lambda: "refused" in kinds(svc, job), 60)
        assert svc.get(job).state == S.AWAITING_APPROVAL
        assert not (instances.workspace(settings.home, "infra", "gate") / "first.txt").exists()


def kinds(svc: OpsService, job: str) -> list[str]:
    return [e.kind for e in svc.get(job, with_events=True).events or ()]


def test_a_stale_plan_is_refused_and_planned_again_for_a_new_approval(
    settings: Settings, catalog: Path
) -> None:
    add_module(catalog)
    add_template(catalog)
    with engine_service(settings, "binary") as svc, running_pool(svc):
        first = submit(svc, "infra", name="shared")
        wait_state(svc, first, S.AWAITING_APPROVAL)
        old = plan_store.latest(svc.db, first)
        second = submit(svc, "infra", name="shared", pause=1)
        wait_state(svc, second, S.AWAITING_APPROVAL)
        svc.approve(second)
        assert wait_state(svc, second, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED
        svc.approve(first)  # its plan was made before the second changed the state
        wait_until(
            lambda: svc.get(first).state == S.AWAITING_APPROVAL and svc.get(first).attempts == 2, 90
        )
        assert old is not None
        stale = plan_store.latest(svc.db, first)
        assert stale is not None and stale["id"] != old["id"] and stale["status"] == "pending"
        with svc.db.read() as conn:
            status = sql(conn, "SELECT status FROM plans WHERE id = ?", (old["id"],))
            assert status.scalar_one() == "stale"
        assert "the saved plan is stale" in log_text(svc, first)
        assert svc.approval_requests()[0].round == 2


def test_plan_only_stops_after_the_plan(settings: Settings, catalog: Path) -> None:
    add_module(catalog)
    add_template(catalog, extra="  plan_only: true\n")
    with engine_service(settings, "binary") as svc, running_pool(svc):
        job = submit(svc, "infra", name="drift")
        assert wait_state(svc, job, S.SUCCEEDED, S.FAILED, S.AWAITING_APPROVAL) == S.SUCCEEDED
        plan = plan_store.latest(svc.db, job)
        assert plan is not None and plan["status"] == "pending" and plan["summary"]["add"] == 3
        assert not (instance_state(svc, "infra", "drift") or {}).get("resources")  # not applied
        assert svc.get(job).result["applied"] is False


@pytest.mark.parametrize("engine", ENGINES)
def test_without_approval_it_plans_and_applies_in_one_attempt_then_destroys(
    settings: Settings, catalog: Path, engine: str
) -> None:
    add_module(catalog)
    add_template(catalog, gated=False)
    with engine_service(settings, engine) as svc, running_pool(svc):
        job = submit(svc, "infra", name="solo")
        assert wait_state(svc, job, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED
        assert svc.get(job).attempts == 1
        add_template(catalog, gated=True, extra="  destroy: true\n")
        svc.reload_catalog()
        gone = submit(svc, "infra", name="solo")
        wait_state(svc, gone, S.AWAITING_APPROVAL)
        plan = plan_store.latest(svc.db, gone)
        assert plan is not None and plan["summary"]["destroy"] == 3
        assert {r["action"] for r in plan["summary"]["resources"]} == {"delete"}
        svc.approve(gone)
        assert wait_state(svc, gone, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED
        # inside: a read after the store is disposed would open a connection nobody closes
        row = instance_store.get(svc.db, "infra", "solo")
    assert row is not None and row["status"] == "destroyed" and row["resources"] == []


def test_a_plan_attempt_does_not_use_up_the_retries(settings: Settings, catalog: Path) -> None:
    add_module(catalog)
    add_template(catalog, extra="", gated=True)
    path = catalog / "templates" / "infra.yaml"
    path.write_text(path.read_text() + "retries: 1\nbackoff: 0.1s\n")
    with engine_service(settings, "binary") as svc, running_pool(svc):
        job = submit(svc, "infra", name="budget", fail_second=True)
        wait_state(svc, job, S.AWAITING_APPROVAL)
        svc.approve(job)
        # the apply fails: with its plan attempt counted it would have no retry left
        wait_until(lambda: "retried" in kinds(svc, job), 90)
        # the retry has no pending plan: it plans again and asks for a new approval
        wait_until(
            lambda: svc.get(job).state == S.AWAITING_APPROVAL and svc.get(job).attempts == 3, 90
        )


def test_a_module_that_needs_a_registry_provider_fails_in_one_line(
    settings: Settings, catalog: Path
) -> None:
    add_module(
        catalog,
        "remote",
        'terraform {\n  required_providers {\n    null = { source = "hashicorp/null" }\n  }\n}\n'
        'resource "null_resource" "x" {}\n'
        'variable "name" { type = string }\nvariable "fail_second" { type = bool }\n'
        'variable "pause" { type = number }\nvariable "token" { type = string }\n',
    )
    add_template(catalog, module="remote", gated=False)
    with engine_service(settings, "binary") as svc, running_pool(svc):
        job = submit(svc, "infra", name="net")
        assert wait_state(svc, job, S.SUCCEEDED, S.FAILED) == S.FAILED
        message = svc.get(job).error["message"]
        assert "needs a provider from a registry" in message and "\n" not in message


@pytest.mark.parametrize(
    ("template", "params", "outputs"),
    [
        ("web_app", {"app_name": "shop", "replicas": 3}, {"url": "http://shop.apps.internal"}),
        (
            "api_service",
            {"service": "orders", "size": "medium", "load_balancer": True, "autoscaling": True},
            {"endpoint": "https://orders.lb.internal", "max_instances": 8},
        ),
    ],
)
def test_the_sample_templates_plan_park_and_apply(
    settings: Settings, catalog: Path, template: str, params: dict, outputs: dict
) -> None:
    samples = Path(__file__).resolve().parents[2] / "data"
    shutil.copytree(samples / "terraform", catalog / "terraform")
    shutil.copy(samples / "templates" / f"{template}.yaml", catalog / "templates")
    with engine_service(settings, "binary") as svc, running_pool(svc):
        job = submit(svc, template, **params)
        assert wait_state(svc, job, S.AWAITING_APPROVAL, S.FAILED) == S.AWAITING_APPROVAL
        svc.approve(job)
        assert wait_state(svc, job, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED
        name = next(iter(params.values()))
        row = instance_store.get(svc.db, template, name)
        assert row is not None and outputs.items() <= row["outputs"].items()
        if template == "api_service":
            assert row["outputs"]["connection_string"] == "***"
            assert "terraform_data.load_balancer[0]" in row["resources"]
