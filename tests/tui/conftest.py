"""Console fixtures: templates to submit, and job rows with fixed ids put in the store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import RowMapping
from support import write_template

from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService
from opsconsole.core.states import FINAL, JobState
from opsconsole.core.store import feed
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database

S = JobState
PutJob = Callable[..., RowMapping]
AddLogs = Callable[..., None]


@pytest.fixture
def templates(catalog: Path) -> Path:
    """``echo`` (one string), ``deploy`` (one parameter of each widget kind), ``pause``."""
    write_template(
        catalog,
        "echo",
        "description: Print a word\nrunner: shell\ncommand: [echo, '{{ word }}']\n"
        "params:\n  word: {type: string}\n",
    )
    write_template(
        catalog,
        "deploy",
        "description: Deploy a service\nrunner: shell\n"
        "command: [echo, 'deploy {{ env }} {{ count }}']\n"
        "concurrency: {key: 'deploy-{{ env }}', limit: 1}\n"
        "params:\n"
        "  env: {type: choice, choices: [dev, prod], required: true}\n"
        "  verbose: {type: boolean, default: false}\n"
        "  token: {type: string, secret: true}\n"
        "  count: {type: integer, min: 1, max: 10, default: 1}\n",
    )
    return catalog


@pytest.fixture
def db(clocked: OpsService) -> Database:
    return clocked.db


@pytest.fixture
def put(db: Database, clock: SettableClock) -> PutJob:
    """Insert a job row with a fixed id in any state (created ``age`` seconds ago).

    Running rows get attempt 1 (so log lines can be appended); final rows get start and
    finish times from ``took`` and ``ended`` (seconds before now).
    """

    def put_job(
        job_id: str,
        state: JobState = S.QUEUED,
        *,
        template: str = "echo",
        age: float = 0.0,
        after: tuple[str, ...] = (),
        took: float = 1.5,
        ended: float = 0.0,
        **values: Any,
    ) -> RowMapping:
        now = clock.now()
        created = now - timedelta(seconds=age)
        row: dict[str, Any] = {
            "id": job_id,
            "template": template,
            "state": state.value,
            "run_at": created,
            "created_at": created,
            "updated_at": created,
            "submitted_by": "tester",
            "depends_on": list(after),  # the service stores the edges and this copy
        }
        if state == S.RUNNING:
            row.update(attempts=1, started_at=created, worker="host-a:w1:1")
        if state in FINAL:
            finished = now - timedelta(seconds=ended)
            row.update(
                attempts=1,
                started_at=finished - timedelta(seconds=took),
                finished_at=finished,
                exit_code=0 if state == S.SUCCEEDED else 1,
            )
        row.update(values)
        return job_store.insert(db, row, after, actor="tester", now=created)

    return put_job


@pytest.fixture
def add_logs(db: Database, clock: SettableClock) -> AddLogs:
    """Append lines to a running job's log (attempt 1), as a worker's log sink does."""

    def add(job_id: str, texts: list[str], *, stream: str = "out", cap: int = 1_000_000) -> None:
        now = clock.now()
        ok = feed.append_logs(db, job_id, 1, [(now, stream, t) for t in texts], cap=cap)
        assert ok, f"{job_id} is not running attempt 1"

    return add


@pytest.fixture
def end(db: Database, clock: SettableClock) -> Callable[..., None]:
    """End attempt 1 of a running job now."""

    def end_job(job_id: str, state: JobState = S.SUCCEEDED, exit_code: int = 0) -> None:
        values = {"exit_code": exit_code}
        assert job_store.finish(db, job_id, 1, state, clock.now(), values=values)

    return end_job
