"""Break-glass, its review, withdrawing a request and typed confirmation, in the core.

The one who breaks the glass is this process's account; the one who acknowledges is a
second real OS account (made with ``useradd``), acting through its own service.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import sql, submitted_by, write_template

from opsconsole.config import load_settings
from opsconsole.core.audit import AuditRequest
from opsconsole.core.clock import SettableClock
from opsconsole.core.errors import Forbidden, InvalidParams, InvalidTransition
from opsconsole.core.identity import for_uid, os_user
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import queries
from opsconsole.core.store.db import Database

S = JobState
GLASS = "command: [echo, hi]\napproval: {required: 1, break_glass: true}\n"
SHUT = "command: [echo, hi]\napproval: {required: 1}\n"
CONFIRMED = (
    "command: [echo, '{{ env }}']\nconfirm: '{{ env }}'\n"
    "params:\n  env: {type: choice, choices: [staging, production], required: true}\n"
)
USER = f"ocrev{os.getpid() % 100000}"


@pytest.fixture(scope="module")
def reviewer() -> Iterator[str]:
    """A second real account: the other person who acknowledges."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd to make a second OS user")
    subprocess.run(["useradd", "-M", "-N", USER], check=True, capture_output=True, timeout=60)
    try:
        yield USER
    finally:
        subprocess.run(["userdel", USER], capture_output=True, timeout=60, check=False)


@pytest.fixture
def two(
    home: Path, catalog: Path, store_url: str, clock: SettableClock, reviewer: str
) -> Iterator[tuple[OpsService, OpsService]]:
    """This process (an operator and approver) and the reviewer (an approver), one store."""
    (home / "opsconsole.toml").write_text(
        f'[roles]\noperator = ["user:{os_user()}"]\n'
        f'approver = ["user:{os_user()}", "user:{reviewer}"]\n'
    )
    settings = load_settings(home=home, catalog=catalog, db=store_url)
    write_template(catalog, "glass", GLASS)
    write_template(catalog, "shut", SHUT)
    dbs = [Database(settings.db), Database(settings.db)]
    me = OpsService(settings, dbs[0], clock=clock)
    other = OpsService(settings, dbs[1], clock=clock)
    other.identity = for_uid(pwd.getpwnam(reviewer).pw_uid)
    try:
        yield me, other
    finally:
        for db in dbs:
            db.dispose()


def kinds(service: OpsService, job: str) -> list[str]:
    return [e.kind for e in service.get(job, with_events=True).events or ()]


def test_break_glass_runs_now_marks_the_job_and_opens_a_review(two) -> None:
    me, _ = two
    job = submitted_by(me, SubmitRequest("glass"), "alice")
    view, review = me.break_glass(job, reason="site down, INC-1")
    assert view.state == S.QUEUED
    row, _ = queries.get(me.db, job)
    assert row["break_glass"] is True
    assert row["approved_digest"] == me.digest_of(row)
    [decision] = me.approval_decisions(job)
    assert (decision["decision"], decision["actor"]) == ("break_glass", os_user())
    assert decision["digest"] == row["approved_digest"]
    claimed = claim_store.claim(me.db, "w1", me.now(), 30)
    assert claimed is not None and claimed["id"] == job
    assert me.gate_refusal(claimed) is None  # the worker lets exactly this run
    assert kinds(me, job)[-2:] == ["break_glass", "started"]
    [open_] = me.open_reviews()
    assert (open_.id, open_.job_id, open_.broken_by) == (review, job, os_user())
    assert open_.reason == "site down, INC-1"
    audit = me.audit(AuditRequest(action="break_glass")).events
    assert [(e.job_id, e.actor) for e in audit] == [(job, os_user())]


def test_only_another_person_acknowledges_the_review(two, reviewer: str) -> None:
    me, other = two
    job = submitted_by(me, SubmitRequest("glass"), "alice")
    _, review = me.break_glass(job, reason="site down")
    with pytest.raises(Forbidden, match=f"{os_user()} broke the glass on job {job}"):
        me.ack_review(review, comment="fine by me")
    assert len(me.open_reviews()) == 1
    with pytest.raises(InvalidParams, match="a comment is required"):
        other.ack_review(review, comment=" ")
    acked = other.ack_review(review, comment="checked INC-1")
    assert (acked.acked_by, acked.comment) == (reviewer, "checked INC-1")
    assert me.open_reviews() == []
    assert [r.id for r in me.reviews(include_acked=True)] == [review]
    with pytest.raises(InvalidTransition, match="acknowledged already by"):
        other.ack_review(review, comment="again")
    audit = me.audit(AuditRequest(action="review")).events
    assert [(e.kind, e.actor) for e in audit] == [("review_acked", reviewer)]


def test_a_template_without_break_glass_refuses_and_changes_nothing(two) -> None:
    me, _ = two
    job = submitted_by(me, SubmitRequest("shut"), "alice")
    before = kinds(me, job)
    with pytest.raises(Forbidden, match="does not allow break-glass"):
        me.break_glass(job, reason="please")
    assert me.get(job).state == S.AWAITING_APPROVAL
    assert kinds(me, job) == before
    assert me.reviews(include_acked=True) == []
    assert me.approval_decisions(job) == []


def test_break_glass_needs_a_reason_and_a_job_awaiting_approval(two) -> None:
    me, _ = two
    job = submitted_by(me, SubmitRequest("glass"), "alice")
    with pytest.raises(InvalidParams, match="a reason is required"):
        me.break_glass(job, reason="  ")
    me.break_glass(job, reason="now")
    with pytest.raises(InvalidTransition, match="it is queued, not awaiting approval"):
        me.break_glass(job, reason="again")


def test_a_row_marked_break_glass_by_hand_does_not_run(two) -> None:
    """Only the break-glass decision for this digest counts, never the column alone."""
    me, _ = two
    job = submitted_by(me, SubmitRequest("glass"), "alice")
    row, _ = queries.get(me.db, job)
    with me.db.write() as conn:
        sql(
            conn,
            "UPDATE jobs SET state = 'queued', break_glass = true, approved_digest = ?"
            " WHERE id = ?",
            (me.digest_of(row), job),
        )
    claimed = claim_store.claim(me.db, "w1", me.now(), 30)
    assert claimed is not None and claimed["id"] == job
    assert me.gate_refusal(claimed) == "it has no matching approval record for round 1"
    assert me.get(job).state == S.AWAITING_APPROVAL


# -- withdrawing a request ------------------------------------------------------------------


def test_the_submitter_withdraws_their_request_as_a_rejection(two) -> None:
    me, _ = two
    job = me.submit(SubmitRequest("shut")).id
    view = me.cancel(job)
    assert view.state == S.REJECTED
    assert view.error is not None and view.error["message"] == f"withdrawn by {os_user()}"
    assert kinds(me, job)[-1] == "withdrawn"
    assert "cancelled" not in kinds(me, job)
    [decision] = me.approval_decisions(job)
    assert decision["decision"] == "withdraw"
    audit = me.audit(AuditRequest(action="reject")).events
    assert [(e.job_id, e.kind) for e in audit] == [(job, "withdrawn")]


def test_anyone_else_is_sent_to_reject(two) -> None:
    me, _ = two
    job = submitted_by(me, SubmitRequest("shut"), "alice")
    with pytest.raises(Forbidden, match=f"opsconsole reject {job} --reason TEXT"):
        me.cancel(job)
    assert me.get(job).state == S.AWAITING_APPROVAL
    assert kinds(me, job)[-1] == "refused"


# -- typed confirmation ---------------------------------------------------------------------


def test_a_confirmed_template_needs_the_rendered_value(clocked: OpsService, catalog: Path) -> None:
    write_template(catalog, "deploy", CONFIRMED)
    params = {"env": "production"}
    assert clocked.confirmation("deploy", params) == "production"
    with pytest.raises(InvalidParams, match='type "production"'):
        clocked.submit(SubmitRequest("deploy", params))
    with pytest.raises(InvalidParams, match="does not match"):
        clocked.submit(SubmitRequest("deploy", params, confirm="staging"))
    assert clocked.counts().get("queued", 0) == 0
    assert clocked.submit(SubmitRequest("deploy", params, confirm="production")).state == S.QUEUED
