"""Stopping and failing Terraform on real Terraform: cancel mid-apply (one SIGINT, no lock, a
consistent state, no process left), a partial apply, an errored.tfstate that blocks, and one
job at a time on an instance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import wait_until
from tf_support import (
    ENGINES,
    add_module,
    add_template,
    engine_service,
    instance_locked,
    instance_state,
    log_text,
    running_pool,
    submit,
    wait_state,
)

from opsconsole.config import Settings
from opsconsole.core import instances
from opsconsole.core.states import JobState
from opsconsole.core.store import instances as instance_store
from opsconsole.engine.procs import find_marked

S = JobState
pytestmark = pytest.mark.slow


def sleepers() -> list[int]:
    """Our ``sleep 307`` provisioners (a length no other test uses), wherever they went."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd[:2] == [b"sleep", b"307"]:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("engine", ENGINES)
def test_cancel_mid_apply_leaves_no_lock_a_consistent_state_and_no_process(
    settings: Settings, catalog: Path, engine: str
) -> None:
    add_module(catalog)
    add_template(catalog, gated=False)
    with engine_service(settings, engine) as svc, running_pool(svc):
        job = submit(svc, "infra", name="halt", pause=307)
        wait_until(lambda: "terraform_data.second: Creating" in log_text(svc, job), 90)
        wait_until(lambda: 0 < (svc.get(job).progress or 0) < 100, 30)  # 1 of 3 done
        assert svc.get(job).state == S.RUNNING
        wait_until(lambda: find_marked(f"{job}.1"), 10)
        svc.cancel(job)
        assert wait_state(svc, job, S.CANCELLED, S.FAILED, S.SUCCEEDED) == S.CANCELLED
        assert find_marked(f"{job}.1") == []
        assert not instance_locked(svc, "infra", "halt")
        state = instance_state(svc, "infra", "halt")
        assert state is not None
        done = instances.summary_of_state(state)["resources"]
        assert "terraform_data.first" in done and "terraform_data.third" not in done
        assert "interrupt sent" in log_text(svc, job)
        # the state is usable: the next job on the instance applies without any unlock
        again = submit(svc, "infra", name="halt")
        assert wait_state(svc, again, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED
    assert not sleepers()


def test_a_partial_apply_reports_what_was_applied(settings: Settings, catalog: Path) -> None:
    add_module(catalog)
    add_template(catalog, gated=False)
    with engine_service(settings, "binary") as svc, running_pool(svc):
        job = submit(svc, "infra", name="half", fail_second=True)
        assert wait_state(svc, job, S.SUCCEEDED, S.FAILED) == S.FAILED
        view = svc.get(job)
        assert view.result["applied"] == ["terraform_data.first"]
        assert view.result["failed"] == ["terraform_data.second"]
        assert "terraform_data.third" not in " ".join(view.result["resources"])
        assert "apply failed after 1 of 3 change(s)" in view.error["message"]
        row = instance_store.get(svc.db, "infra", "half")
        assert row is not None and row["status"] == "errored"
        assert "terraform_data.first" in row["resources"]
        assert "second breaks" in log_text(svc, job)


def test_an_errored_state_blocks_further_applies_until_resolved(
    settings: Settings, catalog: Path
) -> None:
    add_module(catalog)
    add_template(catalog, gated=False)
    with engine_service(settings, "binary") as svc, running_pool(svc):
        ok = submit(svc, "infra", name="stuck")
        assert wait_state(svc, ok, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED
        ws = instances.workspace(settings.home, "infra", "stuck")
        # what Terraform writes when it cannot save the state after an apply
        (ws / instances.ERRORED).write_text(json.dumps(instance_state(svc, "infra", "stuck")))
        blocked = submit(svc, "infra", name="stuck")
        assert wait_state(svc, blocked, S.SUCCEEDED, S.FAILED) == S.FAILED
        message = svc.get(blocked).error["message"]
        assert "errored.tfstate" in message and "\n" not in message
        row = instance_store.get(svc.db, "infra", "stuck")
        assert row is not None and row["status"] == "errored" and row["problem"]
        (ws / instances.ERRORED).unlink()  # the operator resolved it
        fine = submit(svc, "infra", name="stuck")
        assert wait_state(svc, fine, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED
        row = instance_store.get(svc.db, "infra", "stuck")
        assert row is not None and row["problem"] is None


def test_a_second_job_on_one_instance_waits_for_the_first(
    settings: Settings, catalog: Path
) -> None:
    add_module(catalog)
    add_template(catalog, gated=False)
    with engine_service(settings, "binary") as svc, running_pool(svc, slots=2):
        first = submit(svc, "infra", name="one", pause=307)
        wait_until(lambda: "terraform_data.second: Creating" in log_text(svc, first), 90)
        second = submit(svc, "infra", name="one")
        other = submit(svc, "infra", name="two")  # another instance runs meanwhile
        assert wait_state(svc, other, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED
        assert svc.get(second).state == S.QUEUED
        svc.cancel(first)
        assert wait_state(svc, second, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED
    assert not sleepers()


def test_a_timeout_mid_apply_stops_it_the_same_way(settings: Settings, catalog: Path) -> None:
    add_module(catalog)
    add_template(catalog, gated=False)
    path = catalog / "templates" / "infra.yaml"
    path.write_text(path.read_text() + "timeout: 4s\n")
    with engine_service(settings, "binary") as svc, running_pool(svc):
        job = submit(svc, "infra", name="slow", pause=307)
        assert wait_state(svc, job, S.TIMED_OUT, S.FAILED, S.SUCCEEDED) == S.TIMED_OUT
        assert find_marked(f"{job}.1") == []
        assert "timed out after 4s" in svc.get(job).error["message"]
        assert not instance_locked(svc, "infra", "slow")
        assert instance_state(svc, "infra", "slow") is not None
    assert not sleepers()
