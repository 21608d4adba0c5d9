"""The approval gate in the core: policy, approve/reject/expire, the digest, retries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support import submitted_by, write_template

from opsconsole.core.catalog import template_from_dict
from opsconsole.core.clock import SettableClock
from opsconsole.core.errors import Forbidden, InvalidParams, InvalidTransition
from opsconsole.core.identity import os_user
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store.db import Database

S = JobState

GATED = """runner: shell
command: [echo, '{{ word }}']
params:
  word: {type: string, default: hi}
  token: {type: string, secret: true, required: false}
approval:
  required: %(required)d
  expires: 1h
  self_approval: %(self)s
"""


def gated(catalog: Path, name: str = "gated", *, required: int = 1, self_ok: bool = False) -> str:
    write_template(catalog, name, GATED % {"required": required, "self": str(self_ok).lower()})
    return name


def submit(service: OpsService, template: str, *, actor: str = "alice", **kw: object) -> str:
    request = SubmitRequest(template, **kw)  # type: ignore[arg-type]
    return submitted_by(service, request, actor)


def trail(service: OpsService, job: str) -> list[str]:
    return [e.kind for e in service.get(job, with_events=True).events or ()]


# -- the policy in the template ---------------------------------------------------------


@pytest.mark.parametrize(
    ("approval", "message"),
    [
        ("{requierd: 1}", "unknown key 'approval.requierd'"),
        ("{required: 0}", "approval.required must be an integer >= 1, got 0"),
        ("{required: yes}", "approval.required must be an integer >= 1"),
        (
            '{required: 2, approvers: ["user:alice"]}',
            "approval.required is 2 but only 1 user(s) may approve",
        ),
        ("{expires: soon}", "approval.expires: invalid duration 'soon'"),
        ('{approvers: ["ops-leads"]}', "approval.approvers: 'ops-leads' is not user:NAME"),
        ('{approvers: "group:ops"}', "approval.approvers must be a list"),
        ("{self_approval: maybe}", "approval.self_approval must be true or false"),
        ("[1]", "approval must be a mapping of keys"),
    ],
)
def test_a_malformed_policy_is_one_clear_line(approval: str, message: str) -> None:
    import yaml

    data = yaml.safe_load(f"name: t\ncommand: [echo]\napproval: {approval}\n")
    with pytest.raises(InvalidParams) as err:
        template_from_dict(data)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_policy_is_read_with_its_defaults() -> None:
    tpl = template_from_dict(
        {"name": "t", "command": ["echo"], "approval": {"approvers": ["group:ops"]}, "confirm": "x"}
    )
    assert tpl.approval is not None
    assert (tpl.approval.required, tpl.approval.self_approval) == (1, False)
    assert tpl.approval.groups == {"ops"} and tpl.confirm == "x"
    assert template_from_dict({"name": "t", "command": ["echo"]}).approval is None


# -- approve, reject, expire ---------------------------------------------------------------


def test_a_gated_job_starts_awaiting_approval_and_an_approval_queues_it(
    clocked: OpsService, catalog: Path
) -> None:
    job = submit(clocked, gated(catalog))
    view = clocked.get(job)
    assert view.state == S.AWAITING_APPROVAL
    [request] = clocked.approval_requests()
    assert (request.job.id, request.round, request.approvals, request.required) == (job, 1, 0, 1)
    out = clocked.approve(job, comment="looks right")
    assert out.state == S.QUEUED
    [decision] = clocked.approval_decisions(job)
    assert (decision["decision"], decision["actor"], decision["comment"]) == (
        "approve",
        os_user(),
        "looks right",
    )
    assert len(decision["digest"]) == 64
    assert "approved" in trail(clocked, job)


def test_approving_for_a_future_run_schedules_it(clocked: OpsService, catalog: Path) -> None:
    job = submit(clocked, gated(catalog), run_in="2h")
    assert clocked.approve(job).state == S.SCHEDULED


def test_approving_a_job_with_unfinished_dependencies_makes_it_wait(
    clocked: OpsService, catalog: Path, echo: str
) -> None:
    template = gated(catalog)
    first = submit(clocked, echo)
    job = submit(clocked, template, after=(first,))
    assert clocked.approve(job).state == S.WAITING


def test_two_approvals_needed_means_two_distinct_people(clocked: OpsService, catalog: Path) -> None:
    job = submit(clocked, gated(catalog, required=2))
    assert clocked.approve(job).state == S.AWAITING_APPROVAL
    with pytest.raises(InvalidTransition, match="already approved"):
        clocked.approve(job)
    assert clocked.get(job).state == S.AWAITING_APPROVAL
    assert "approval_added" in trail(clocked, job)


def test_the_submitter_cannot_approve_their_own_job(clocked: OpsService, catalog: Path) -> None:
    job = submit(clocked, gated(catalog), actor=os_user())
    with pytest.raises(Forbidden, match="may not approve it"):
        clocked.approve(job)
    assert clocked.get(job).state == S.AWAITING_APPROVAL
    assert clocked.approval_decisions(job) == []


def test_self_approval_when_the_template_allows_it(clocked: OpsService, catalog: Path) -> None:
    job = submit(clocked, gated(catalog, self_ok=True), actor=os_user())
    assert clocked.approve(job).state == S.QUEUED


def test_only_a_listed_approver_may_approve(clocked: OpsService, catalog: Path) -> None:
    write_template(catalog, "listed", "command: [echo]\napproval: {approvers: ['user:daemon']}\n")
    job = submit(clocked, "listed")
    with pytest.raises(Forbidden, match="is not an approver of template 'listed'"):
        clocked.approve(job)
    assert clocked.get(job).state == S.AWAITING_APPROVAL


def test_a_group_approver_is_matched_by_the_callers_unix_groups(
    clocked: OpsService, catalog: Path
) -> None:
    import grp
    import os

    group = grp.getgrgid(os.getgid()).gr_name
    policy = f"approval: {{approvers: ['group:{group}']}}\n"
    write_template(catalog, "bygroup", "command: [echo]\n" + policy)
    job = submit(clocked, "bygroup")
    assert clocked.approve(job).state == S.QUEUED


def test_reject_needs_a_reason_and_ends_the_job(clocked: OpsService, catalog: Path) -> None:
    job = submit(clocked, gated(catalog))
    with pytest.raises(InvalidParams, match="a reason is required"):
        clocked.reject(job, reason="  ")
    assert clocked.get(job).state == S.AWAITING_APPROVAL
    view = clocked.reject(job, reason="not during the sale")
    assert view.state == S.REJECTED
    assert view.error is not None and view.error["message"] == "not during the sale"
    with pytest.raises(InvalidTransition, match="it is rejected, not awaiting approval"):
        clocked.approve(job)


def test_approving_a_job_of_an_ungated_template_is_refused(clocked: OpsService, echo: str) -> None:
    job = submit(clocked, echo)
    with pytest.raises(InvalidTransition, match="asks for no approval"):
        clocked.approve(job)
    assert clocked.get(job).state == S.QUEUED


def test_an_unanswered_request_expires_rejected(
    clocked: OpsService, clock: SettableClock, catalog: Path
) -> None:
    job = submit(clocked, gated(catalog))
    clock.advance(3599)
    assert clocked.expire_approvals() == []
    clock.advance(2)
    assert clocked.expire_approvals() == [job]
    view = clocked.get(job)
    assert view.state == S.REJECTED
    assert view.error is not None and view.error["message"] == "expired"
    assert "expired" in trail(clocked, job)
    assert [d["decision"] for d in clocked.approval_decisions(job)] == ["expire"]


def test_a_retry_of_a_failed_gated_job_needs_a_new_approval(
    clocked: OpsService, catalog: Path, db_path: Path
) -> None:
    job = submit(clocked, gated(catalog))
    clocked.approve(job)
    with sqlite3.connect(db_path) as conn:  # as if its attempt failed
        conn.execute("UPDATE jobs SET state='failed' WHERE id=?", (job,))
    view = clocked.retry(job)
    assert view.state == S.AWAITING_APPROVAL
    [request] = clocked.approval_requests()
    assert (request.round, request.approvals) == (2, 0)
    assert clocked.approve(job).state == S.QUEUED


def test_a_template_edited_before_the_approval_starts_a_new_round(
    clocked: OpsService, catalog: Path
) -> None:
    service = OpsService(clocked.settings, clocked.db, clock=clocked.clock)  # reads the disk
    job = submit(service, gated(catalog, required=2))
    service.approve(job)
    edited = (GATED % {"required": 2, "self": "false"}).replace("echo", "printf")
    write_template(catalog, "gated", edited)
    service.approve(job)  # the first approval was for the old template: void
    request = service.approval_requests()[0]
    assert (request.round, request.approvals) == (2, 1)
    decided = [d["decision"] for d in service.approval_decisions(job)]
    assert decided == ["approve", "void", "approve"]
    assert "approval_void" in trail(service, job)
    assert service.get(job).state == S.AWAITING_APPROVAL


def test_the_digest_binds_secrets_without_holding_them(
    clocked: OpsService, catalog: Path, db_path: Path
) -> None:
    one = submit(clocked, gated(catalog), params={"token": "s3cret-one"})
    two = submit(clocked, gated(catalog), params={"token": "s3cret-two"})
    clocked.approve(one)
    clocked.approve(two)
    [a] = clocked.approval_decisions(one)
    [b] = clocked.approval_decisions(two)
    assert a["digest"] != b["digest"]
    raw = db_path.read_bytes()
    assert b"s3cret-one" not in raw


def test_the_audit_trail_cannot_be_edited_or_deleted(
    clocked: OpsService, catalog: Path, db_path: Path
) -> None:
    job = submit(clocked, gated(catalog))
    with sqlite3.connect(db_path) as conn:
        for sql in ("UPDATE job_events SET actor='x'", "DELETE FROM job_events"):
            with pytest.raises(sqlite3.IntegrityError, match="the audit trail is append-only"):
                conn.execute(sql)
    assert trail(clocked, job) == ["submitted"]


def test_an_upgraded_store_has_the_governance_schema(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'new.db'}")
    db.ensure_schema()
    with sqlite3.connect(tmp_path / "new.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = {r[1] for r in conn.execute("PRAGMA table_info(jobs)")}
    db.dispose()
    assert {"approvals", "reviews", "freezes"} <= tables
    gate = {"team", "gate_round", "approval_expires_at", "approved_digest", "break_glass"}
    assert gate <= columns


def test_approvals_and_expiries_are_in_the_audit_trail(clocked: OpsService, catalog: Path) -> None:
    from opsconsole.core.audit import AuditRequest

    first, other = gated(catalog), gated(catalog, "other")
    approved = submit(clocked, first)
    clocked.approve(approved)
    expiring = submit(clocked, other)
    clocked.clock.advance(7200)  # type: ignore[attr-defined]
    assert clocked.expire_approvals() == [expiring]
    kinds = {(e.job_id, e.kind) for e in clocked.audit(AuditRequest(action="approve")).events}
    assert (approved, "approved") in kinds
    expired = clocked.audit(AuditRequest(action="expire")).events
    assert [(e.job_id, e.kind) for e in expired] == [(expiring, "expired")]


@pytest.mark.parametrize(
    ("approval", "message"),
    [
        ("{approvers: ['group:no-such-group-x']}", "no group 'no-such-group-x' on this host"),
        ("{approvers: ['user:no-such-user-x']}", "no user 'no-such-user-x' on this host"),
        (
            "{required: 3, approvers: ['user:daemon', 'user:bin']}",
            "approval.required is 3 but only 2 user(s) may approve",
        ),
        (
            "{required: 3, approvers: ['group:root', 'user:daemon']}",
            "approval.required is 3 but the approvers name only 2 account(s) on this host",
        ),
    ],
)
def test_a_gate_nobody_can_open_is_a_catalog_problem(
    catalog: Path, approval: str, message: str
) -> None:
    """A typo in an approver, or too few of them, would leave jobs waiting forever."""
    from opsconsole.core.catalog import Catalog
    from opsconsole.core.errors import NotFound

    write_template(catalog, "stuck", f"command: [echo]\napproval: {approval}\n")
    loaded = Catalog.load(catalog)
    [problem] = loaded.problems
    assert message in problem.message and problem.line == 3, problem
    with pytest.raises(NotFound, match="is not loaded"):
        loaded.get("stuck")


def test_a_store_that_refuses_the_expiry_is_said_not_skipped(
    settings, clock, catalog: Path, db_path: Path
) -> None:
    """Expiry runs on the pool's timer: a store error must reach it (reported, retried next
    pass), not be taken for a request someone decided meanwhile."""
    from store_faults import write_lock

    from opsconsole.core.errors import StoreUnavailable
    from opsconsole.core.store.db import Database

    db = Database(settings.db, busy_timeout=0.5)
    svc = OpsService(settings, db, clock=clock)
    try:
        job = submit(svc, gated(catalog))
        clock.advance(7200)
        with write_lock(db_path), pytest.raises(StoreUnavailable):
            svc.expire_approvals()
        assert svc.get(job).state == S.AWAITING_APPROVAL
        assert svc.expire_approvals() == [job]  # the next pass expires it
    finally:
        db.dispose()
