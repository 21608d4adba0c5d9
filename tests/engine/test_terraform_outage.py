"""The Terraform runner's own store work (the plan's status after its apply, the instance's
record) waits for a store that is away instead of failing the job: an apply that already
changed the infrastructure must end recorded as applied, or a retry would apply again.

As in ``test_prepare_outage.py``, a real server's shutdown cannot be timed into the one write
after an apply, so that write fails the way the store layer reports a server that is away
(``StoreUnavailable`` with ``away``) for its first tries, then goes through to the real store;
Terraform, the pool and the store are real.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import pytest
from support import wait_until
from tf_support import (
    add_module,
    add_template,
    engine_service,
    log_text,
    running_pool,
    submit,
    wait_state,
)

from opsconsole.config import Settings
from opsconsole.core.errors import StoreUnavailable
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.store import instances as instance_store
from opsconsole.core.store import plans as plan_store
from opsconsole.core.store.db import Database

S = JobState
pytestmark = pytest.mark.slow


class AppliedAway:
    """``plan_store.set_status``, with the store away for the first ``tries`` times a plan is
    marked applied."""

    def __init__(self, tries: int) -> None:
        self.left = tries
        self.refused = 0
        self.failing = threading.Event()
        self.real = plan_store.set_status

    def __call__(self, db: Database, plan_id: int, status: str, now: datetime) -> None:
        if status == "applied" and self.left:
            self.left -= 1
            self.refused += 1
            self.failing.set()
            raise StoreUnavailable("store x: terminating connection", away=True)
        self.real(db, plan_id, status, now)


def test_an_apply_whose_record_meets_a_store_away_is_recorded_when_it_answers(
    settings: Settings, catalog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_module(catalog)
    add_template(catalog, gated=False)
    away = AppliedAway(3)
    monkeypatch.setattr(plan_store, "set_status", away)
    with engine_service(settings, "binary") as svc, running_pool(svc):
        job = submit(svc, "infra", name="solo")
        assert wait_state(svc, job, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED, svc.get(job).message
        assert away.refused == 3
        plan = plan_store.latest(svc.db, job)
        assert plan is not None and plan["status"] == "applied"
        row = instance_store.get(svc.db, "infra", "solo")
    assert row is not None and row["status"] == "applied" and len(row["resources"]) == 3


def test_a_cancel_while_the_record_waits_for_the_store_ends_the_job_cancelled(
    settings: Settings, catalog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_module(catalog)
    add_template(catalog, gated=False)
    away = AppliedAway(10**6)
    monkeypatch.setattr(plan_store, "set_status", away)
    with engine_service(settings, "binary") as svc, running_pool(svc):
        job = submit(svc, "infra", name="halted")
        wait_until(away.failing.is_set, timeout=90)
        assert svc.get(job).state == S.RUNNING  # waiting, not failed
        svc.cancel(job)
        assert wait_state(svc, job, S.CANCELLED, S.FAILED) == S.CANCELLED
        error = svc.get(job).error or {}
        assert "while its run waited for the store" in error.get("message", "")


def test_a_sqlite_write_lock_held_past_the_busy_timeout_is_waited_out(
    settings: Settings, catalog: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The real thing on SQLite: another process takes the store's write lock during the
    apply and holds it past the busy timeout; marking the plan applied waits until it lets
    go, and the job ends succeeded."""
    if not settings.db.startswith("sqlite"):
        pytest.skip("a SQLite store's write lock")
    from store_faults import write_lock

    add_module(catalog)
    add_template(catalog, gated=False)
    path = Path(settings.db.removeprefix("sqlite:///"))
    db = Database(settings.db, busy_timeout=0.5)
    try:
        svc = OpsService(settings, db)
        job = submit(svc, "infra", name="locked", pause=4)  # the apply's second step: 4 s
        waiting = f"job {job}: cannot read or write its plan or instance, retrying"
        with caplog.at_level("INFO", logger="opsconsole"), running_pool(svc):
            wait_until(lambda: "terraform_data.second: Creating" in log_text(svc, job), 90)
            with write_lock(path) as lock:
                wait_until(lambda: waiting in caplog.text, timeout=90)
                assert svc.get(job).state == S.RUNNING
                lock.release()
            assert wait_state(svc, job, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED
            plan = plan_store.latest(svc.db, job)
            assert plan is not None and plan["status"] == "applied"
    finally:
        db.dispose()
