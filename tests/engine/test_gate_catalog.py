"""The worker's gate holds the catalog's policy: a job whose copy of a gated template had its
``approval:`` taken out (a row written by hand, e.g. at a psql prompt, where the database
cannot know the catalog) is refused and handed to awaiting approval with the real template."""

from __future__ import annotations

from pathlib import Path

from support import wait_until, write_template

from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store.db import jobs
from opsconsole.engine.pool import WorkerPool

S = JobState


def kinds(service: OpsService, job: str) -> list[str]:
    return [e.kind for e in service.get(job, with_events=True).events or ()]


def test_a_gated_templates_job_without_its_gate_is_refused(
    clocked: OpsService, catalog: Path
) -> None:
    write_template(catalog, "gated", "command: [echo, hi]\napproval: {required: 1}\n")
    job = clocked.submit(SubmitRequest("gated")).id
    with clocked.db.write() as conn:
        row = conn.execute(jobs.select().where(jobs.c.id == job)).mappings().one()
        stripped = {k: v for k, v in row["spec"].items() if k != "approval"}
        conn.execute(
            jobs.update()
            .where(jobs.c.id == job)
            .values(state="queued", spec=stripped, submitted_by="alice")
        )
    pool = WorkerPool(clocked, slots=1, use_scheduler=False).start()
    try:
        wait_until(lambda: "refused" in kinds(clocked, job), timeout=30)
    finally:
        pool.stop(grace=1)
    view = clocked.get(job, with_events=True)
    assert view.state == S.AWAITING_APPROVAL
    refused = [e.message for e in view.events or () if e.kind == "refused"]
    assert refused and "asks for an approval the job's copy of it lacks" in refused[0]
    assert view.log_lines <= 1  # the claim's own line: nothing of the job ran
    with clocked.db.read() as conn:
        now = conn.execute(jobs.select().where(jobs.c.id == job)).mappings().one()
    assert now["spec"]["approval"] == {"required": 1}  # the catalog's gate, for the next round
