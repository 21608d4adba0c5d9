"""What the approval prompt reads: the request as the approver sees it before deciding."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import submitted_by, write_template

from opsconsole.core.errors import InvalidTransition
from opsconsole.core.identity import os_user
from opsconsole.core.service import OpsService, SubmitRequest

GATED = """runner: shell
command: [deploy, '{{ app }}', '--token={{ token }}']
env: {TARGET: '{{ app }}-prod'}
params:
  app: {type: string, required: true}
  token: {type: string, secret: true, required: false}
approval: {required: 2, approvers: ["user:daemon", "user:%s", "group:adm"], expires: 1h}
"""


def test_the_detail_shows_what_runs_with_secrets_masked_and_the_digest(
    clocked: OpsService, catalog: Path
) -> None:
    write_template(catalog, "gated", GATED % os_user())
    request = SubmitRequest("gated", params={"app": "shop", "token": "hunter2"})
    job = submitted_by(clocked, request, "carol")
    detail = clocked.approval_detail(job)
    assert detail.command == ("deploy", "shop", "--token=***")
    assert detail.env == {"TARGET": "shop-prod"}
    assert "hunter2" not in repr(detail)
    assert (detail.approvals, detail.required, detail.round) == (0, 2, 1)
    assert detail.approvers == ("user:daemon", f"user:{os_user()}", "group:adm")
    assert detail.job.submitted_by == "carol"
    assert detail.expires_at is not None
    clocked.approve(job)
    again = clocked.approval_detail(job)
    assert again.approvals == 1 and len(again.approved_by) == 1
    [decision] = clocked.approval_decisions(job)
    assert decision["digest"] == detail.digest  # the digest shown is the one approved


def test_a_job_not_awaiting_approval_has_no_prompt(
    clocked: OpsService, catalog: Path, echo: str
) -> None:
    write_template(catalog, "gated", GATED % os_user())
    job = clocked.submit(SubmitRequest(echo)).id
    with pytest.raises(InvalidTransition, match="asks for no approval"):
        clocked.approval_detail(job)
    gated = submitted_by(clocked, SubmitRequest("gated", params={"app": "x"}), "carol")
    clocked.reject(gated, reason="no")
    with pytest.raises(InvalidTransition, match="is rejected, not awaiting approval"):
        clocked.approval_detail(gated)


def test_a_terraform_job_shows_its_plan(clocked: OpsService, catalog: Path) -> None:
    from instance_support import HASH, PLAN, planned, terraform_catalog

    terraform_catalog(catalog)
    job = submitted_by(clocked, SubmitRequest("api_service", params={"name": "shop"}), "carol")
    assert clocked.get(job).state == "queued"  # it plans first: no approval asked yet
    planned(clocked, job, "api_service", "shop")
    detail = clocked.approval_detail(job)
    plan = detail.plan
    assert plan is not None
    assert (plan.add, plan.change, plan.destroy, plan.replace) == (2, 1, 1, 1)
    assert plan.counts == "+2 ~1 -1 ±1"
    assert (plan.short_hash, plan.status) == (HASH[:12], "pending")
    assert [(r.address, r.action) for r in plan.changes] == [
        (r["address"], r["action"]) for r in PLAN["resources"] if r["action"] != "no-op"
    ]
    assert [r.address for r in plan.destroys] == ["terraform_data.old_cache", "terraform_data.lb"]
    assert plan.outputs["admin_password"] == {"action": "create", "sensitive": True}
    assert (detail.instance, detail.destroy) == ("shop", False)
    assert plan.to_dict()["counts"] == "+2 ~1 -1 ±1"


def test_a_newer_plan_replaces_the_one_shown(clocked: OpsService, catalog: Path) -> None:
    from instance_support import DESTROY_PLAN, planned, terraform_catalog

    terraform_catalog(catalog)
    job = submitted_by(clocked, SubmitRequest("api_service", params={"name": "shop"}), "carol")
    planned(clocked, job, "api_service", "shop")
    planned(clocked, job, "api_service", "shop", DESTROY_PLAN, hash_="a" * 64)
    plan = clocked.approval_detail(job).plan
    assert plan is not None and (plan.counts, plan.hash) == ("+0 ~0 -2", "a" * 64)


def test_a_gated_playbook_shows_the_playbook_and_its_variables_masked(
    clocked: OpsService, catalog: Path
) -> None:
    write_template(
        catalog,
        "gated-play",
        """runner: ansible
ansible:
  playbook: ansible/deploy.yml
  inventory: {hosts: {web1: {ansible_connection: local}}}
  extravars: {release: '{{ release }}', api_token: '{{ token }}'}
params:
  release: {type: string, required: true}
  token: {type: string, secret: true, required: true}
approval: {required: 1}
""",
    )
    request = SubmitRequest("gated-play", params={"release": "v2", "token": "hunter2"})
    detail = clocked.approval_detail(submitted_by(clocked, request, "carol"))
    assert detail.runs == "playbook ansible/deploy.yml"
    assert detail.extravars == {"release": "v2", "api_token": "***"}
    assert "hunter2" not in repr(detail)
