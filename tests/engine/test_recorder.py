"""Recording an attempt's end: retried until it lands, because a lost end means a job
that stays ``running`` for ever."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from store_faults import write_lock
from support import wait_until, write_template

from opsconsole.core.clock import SystemClock
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.engine.context import RunResult
from opsconsole.engine.recorder import Recorder

S = JobState


@pytest.fixture
def claimed(impatient: OpsService, catalog: Path) -> dict[str, Any]:
    write_template(catalog, "hello", "command: [echo, hi]\n")
    impatient.submit(SubmitRequest("hello"))
    row = claim_store.claim(impatient.db, "w1", impatient.now(), 30)
    assert row is not None
    return dict(row)


def recorder(svc: OpsService, stopping: threading.Event) -> Recorder:
    return Recorder(svc.db, SystemClock(), "w1", max_interruptions=3, stopping=stopping)


def test_an_end_that_cannot_be_written_is_retried_until_it_lands(
    impatient: OpsService, claimed: dict[str, Any], db_path: Path
) -> None:
    rec = recorder(impatient, threading.Event())
    ends: list[Any] = []
    with write_lock(db_path) as lock:
        writer = threading.Thread(target=lambda: ends.append(rec.record(claimed, RunResult())))
        writer.start()
        wait_until(lambda: rec.problem is not None, 15)
        assert f"cannot record the end of job {claimed['id']}" in rec.problem
        assert impatient.get(claimed["id"]).state == S.RUNNING
        lock.release()
    writer.join(30)
    assert not writer.is_alive()
    assert ends[0] is not None and ends[0].state == S.SUCCEEDED
    assert impatient.get(claimed["id"]).state == S.SUCCEEDED
    assert rec.problem is None


def test_a_stopping_worker_gives_up_after_its_patience_and_leaves_the_job_to_the_reaper(
    impatient: OpsService, claimed: dict[str, Any], db_path: Path
) -> None:
    stopping = threading.Event()
    stopping.set()
    rec = Recorder(
        impatient.db, SystemClock(), "w1", max_interruptions=3, stopping=stopping, patience=0.5
    )
    with write_lock(db_path):
        assert rec.record(claimed, RunResult()) is None
    assert impatient.get(claimed["id"]).state == S.RUNNING  # its lease will run out


def test_an_end_the_store_cannot_take_is_recorded_as_a_plain_failure(
    impatient: OpsService, claimed: dict[str, Any]
) -> None:
    """Not the store being away, but this end itself (a result that is not JSON)."""
    rec = recorder(impatient, threading.Event())
    end = rec.record(claimed, RunResult(result={"when": object()}))
    assert end is not None and end.state == S.FAILED
    view = impatient.get(claimed["id"])
    assert view.state == S.FAILED
    assert view.error is not None and "could not be recorded" in view.error["message"]
