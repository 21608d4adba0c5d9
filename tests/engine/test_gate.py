"""The worker's side of the approval gate: it recomputes the digest at claim and refuses a
gated job without a matching approval, handing it back to awaiting approval (audited)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from support import submitted_by, wait_until, write_template

from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import FINAL, JobState
from opsconsole.engine.pool import WorkerPool

S = JobState
GATED = "command: [echo, '{{ word }}']\nparams:\n  word: {type: string, default: hi}\n"
POLICY = "approval: {required: 1, expires: 1h}\n"


def run_pool(service: OpsService, until: object) -> None:
    pool = WorkerPool(service, slots=1, use_scheduler=False).start()
    try:
        wait_until(until, timeout=30)  # type: ignore[arg-type]
    finally:
        pool.stop(grace=1)


def kinds(service: OpsService, job: str) -> list[str]:
    return [e.kind for e in service.get(job, with_events=True).events or ()]


def submitted(service: OpsService, catalog: Path) -> str:
    write_template(catalog, "gated", GATED + POLICY)
    return submitted_by(service, SubmitRequest("gated"), "alice")


def test_an_approved_job_runs(clocked: OpsService, catalog: Path) -> None:
    job = submitted(clocked, catalog)
    clocked.approve(job)
    run_pool(clocked, lambda: clocked.get(job).state in FINAL)
    assert clocked.get(job).state == S.SUCCEEDED


def test_a_job_set_to_queued_by_hand_is_refused_and_the_refusal_audited(
    clocked: OpsService, catalog: Path, db_path: Path
) -> None:
    job = submitted(clocked, catalog)
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE jobs SET state='queued' WHERE id=?", (job,))
    run_pool(clocked, lambda: "refused" in kinds(clocked, job))
    view = clocked.get(job, with_events=True)
    assert view.state == S.AWAITING_APPROVAL
    refused = [e for e in view.events or () if e.kind == "refused"]
    assert "no approval opened its gate" in refused[0].message
    assert clocked.approval_requests()[0].round == 2
    assert view.log_lines <= 1  # the claim's own line: nothing of the job ran


def test_parameters_edited_after_the_approval_void_it(
    clocked: OpsService, catalog: Path, db_path: Path
) -> None:
    job = submitted(clocked, catalog)
    clocked.approve(job)
    with sqlite3.connect(db_path) as conn:
        conn.execute("""UPDATE jobs SET params='{"word": "rm -rf"}' WHERE id=?""", (job,))
    run_pool(clocked, lambda: "refused" in kinds(clocked, job))
    view = clocked.get(job, with_events=True)
    assert view.state == S.AWAITING_APPROVAL
    [refused] = [e for e in view.events or () if e.kind == "refused"]
    assert "parameters or secrets changed since the approval" in refused.message
    assert [d["decision"] for d in clocked.approval_decisions(job)] == ["approve", "void"]


def test_a_template_edited_after_the_approval_voids_it(clocked: OpsService, catalog: Path) -> None:
    job = submitted(clocked, catalog)
    clocked.approve(job)
    write_template(catalog, "gated", GATED.replace("echo", "printf") + POLICY)
    run_pool(clocked, lambda: "refused" in kinds(clocked, job))
    view = clocked.get(job, with_events=True)
    assert view.state == S.AWAITING_APPROVAL
    [refused] = [e for e in view.events or () if e.kind == "refused"]
    assert "template 'gated' changed" in refused.message
    clocked.approve(job)  # the new round approves the new template, which then runs
    run_pool(clocked, lambda: clocked.get(job).state in FINAL)
    assert clocked.get(job).state == S.SUCCEEDED
    assert any(line.text == "hi" for line in clocked.logs_since(job))


def test_the_pools_tick_expires_unanswered_requests(
    clocked: OpsService, clock: SettableClock, catalog: Path
) -> None:
    job = submitted(clocked, catalog)
    pool = WorkerPool(clocked, slots=1, use_scheduler=False).start()
    try:
        clock.advance(3601)
        pool.tick(clock.now())
        view = clocked.get(job)
        assert view.state == S.REJECTED
        assert view.error is not None and view.error["message"] == "expired"
    finally:
        pool.stop(grace=1)
