"""Fixtures for the core tests: a template to submit, and job rows put straight in the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import RowMapping
from support import write_template

from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database

PutJob = Callable[..., RowMapping]


@pytest.fixture
def echo(catalog: Path) -> str:
    """A plain shell template with one optional parameter."""
    write_template(
        catalog,
        "echo",
        "runner: shell\ncommand: [echo, '{{ word }}']\nparams:\n  word: {type: string}\n",
    )
    return "echo"


@pytest.fixture
def db(clocked: OpsService) -> Database:
    return clocked.db


@pytest.fixture
def put_job(db: Database, clock: SettableClock) -> PutJob:
    """Insert a job row in any state, bypassing the service (for store-level tests)."""
    counter = iter(range(1, 10_000))

    def put(
        state: JobState | str = JobState.QUEUED,
        *,
        id: str | None = None,
        after: tuple[str, ...] = (),
        **values: Any,
    ) -> RowMapping:
        now = clock.now()
        row: dict[str, Any] = {
            "id": id or f"t{next(counter):05d}",
            "template": "echo",
            "state": JobState(state).value,
            "run_at": now,
            "created_at": now,
            "updated_at": now,
            **values,
        }
        return job_store.insert(db, row, after, actor="tester", now=now)

    return put
