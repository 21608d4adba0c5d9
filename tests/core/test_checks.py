"""Checks in the core: what a finished check job records, when ``check.changed`` is written,
the ``check:`` template key, and the service's read API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from itertools import count
from typing import Any

import pytest
from sqlalchemy.engine import RowMapping

from opsconsole.core.catalog import template_from_dict
from opsconsole.core.catalog.check import status_of_exit, worst
from opsconsole.core.catalog.errors import SchemaError
from opsconsole.core.checks import overall
from opsconsole.core.clock import SettableClock
from opsconsole.core.errors import NotFound
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.store import feed
from opsconsole.core.store import jobs as job_store

S = JobState
PutJob = Callable[..., RowMapping]
PY_CHECK = {"name": "web", "runner": "python", "handler": "m:f", "check": True}
SHELL_CHECK = {"name": "plug", "runner": "shell", "command": ["plug"], "check": True}
_ids = count(1)


def end(
    clocked: OpsService,
    clock: SettableClock,
    put_job: PutJob,
    state: JobState,
    result: Any = None,
    *,
    spec: dict[str, Any] | None = None,
    schedule: str | None = None,
    exit_code: int | None = None,
    out: str | None = None,
    error: dict[str, Any] | None = None,
) -> str:
    """A running check job that ends ``state`` with ``result``, one minute after the last."""
    clock.advance(60)
    spec = spec or PY_CHECK
    job_id = f"c{next(_ids):05d}"
    put_job(
        S.RUNNING,
        id=job_id,
        template=spec["name"],
        spec=spec,
        attempts=1,
        schedule=schedule,
    )
    if out is not None:
        feed.append_logs(clocked.db, job_id, 1, [(clock.now(), "out", out)], cap=1000)
    values = {"result": result, "exit_code": exit_code, "error": error}
    assert job_store.finish(clocked.db, job_id, 1, state, clock.now(), values=values)
    return job_id


def changes(clocked: OpsService) -> list[dict[str, Any]]:
    return [e.data for e in clocked.events_since(0, limit=1000) if e.kind == "check.changed"]


def ok(summary: str = "fine", latency: float | None = 12.5) -> dict[str, Any]:
    return {"status": "ok", "summary": summary, "latency_ms": latency}


def test_a_finished_check_job_records_its_status_output_and_latency(
    clocked: OpsService, clock: SettableClock, put_job: PutJob
) -> None:
    job = end(clocked, clock, put_job, S.SUCCEEDED, ok("GET / -> 200 in 12.5 ms"))
    [view] = clocked.checks()
    assert (view.name, view.template, view.status) == ("web", "web", "ok")
    assert view.output == "GET / -> 200 in 12.5 ms"
    assert view.latency_ms == 12.5
    assert (view.last_job, view.last_at, view.since) == (job, clock.now(), clock.now())
    assert [r.status for r in view.recent] == ["ok"]
    assert changes(clocked) == []  # a new check that starts ok is no news


def test_a_status_change_writes_exactly_one_check_changed_event(
    clocked: OpsService, clock: SettableClock, put_job: PutJob
) -> None:
    end(clocked, clock, put_job, S.SUCCEEDED, ok())
    end(clocked, clock, put_job, S.SUCCEEDED, ok())
    changed_at = clock.now() + timedelta(seconds=60)
    bad = {"status": "critical", "summary": "GET / returned 500"}
    job = end(clocked, clock, put_job, S.FAILED, bad)
    end(clocked, clock, put_job, S.FAILED, bad)
    assert changes(clocked) == [
        {"check": "web", "from": "ok", "to": "critical", "output": "GET / returned 500"}
    ]
    event = next(e for e in clocked.events_since(0) if e.kind == "check.changed")
    assert event.job_id == job  # the job whose end changed it
    view = clocked.check("web").view
    assert (view.status, view.since) == ("critical", changed_at)
    assert [r.status for r in view.recent] == ["ok", "ok", "critical", "critical"]


def test_a_new_check_that_starts_bad_says_so(
    clocked: OpsService, clock: SettableClock, put_job: PutJob
) -> None:
    end(clocked, clock, put_job, S.PARTIAL, {"status": "warning", "summary": "slow"})
    assert changes(clocked) == [{"check": "web", "from": None, "to": "warning", "output": "slow"}]


def test_the_check_is_named_for_its_schedule_when_a_schedule_fired_it(
    clocked: OpsService, clock: SettableClock, put_job: PutJob
) -> None:
    end(clocked, clock, put_job, S.SUCCEEDED, ok(), schedule="web-every-minute")
    end(clocked, clock, put_job, S.SUCCEEDED, ok())
    assert [(v.name, v.template) for v in clocked.checks()] == [
        ("web", "web"),
        ("web-every-minute", "web"),
    ]


@pytest.mark.parametrize(
    ("code", "state", "status"),
    [
        (0, S.SUCCEEDED, "ok"),
        (1, S.PARTIAL, "warning"),
        (2, S.FAILED, "critical"),
        (3, S.FAILED, "unknown"),
        (127, S.FAILED, "unknown"),
    ],
)
def test_a_shell_plugin_says_its_status_by_exit_code_and_its_summary_first(
    clocked: OpsService,
    clock: SettableClock,
    put_job: PutJob,
    code: int,
    state: JobState,
    status: str,
) -> None:
    end(
        clocked,
        clock,
        put_job,
        state,
        spec=SHELL_CHECK,
        exit_code=code,
        out="DISK WARNING - 85% used | used=85%;80;90",
    )
    view = clocked.check("plug").view
    assert (view.status, view.output) == (status, "DISK WARNING - 85% used")


def test_a_check_that_ended_without_a_status_is_unknown_and_says_why(
    clocked: OpsService, clock: SettableClock, put_job: PutJob
) -> None:
    error = {"message": "timed out after 10s", "kind": "timed_out"}
    end(clocked, clock, put_job, S.TIMED_OUT, error=error)
    view = clocked.check("web").view
    assert view.status == "unknown"
    assert view.output == "the check ended timed out: timed out after 10s"


def test_an_interrupted_check_records_nothing_so_a_restart_never_flips_a_status(
    clocked: OpsService, clock: SettableClock, put_job: PutJob
) -> None:
    end(clocked, clock, put_job, S.SUCCEEDED, ok())
    error = {"message": "the worker shut down", "kind": "interrupted"}
    end(clocked, clock, put_job, S.INTERRUPTED, error=error)
    assert clocked.check("web").view.status == "ok"
    assert [r.status for r in clocked.check("web").results] == ["ok"]
    assert changes(clocked) == []


def test_cancelled_dry_run_and_plain_jobs_record_nothing(
    clocked: OpsService, clock: SettableClock, put_job: PutJob
) -> None:
    clock.advance(1)
    put_job(S.QUEUED, id="q1", template="web", spec=PY_CHECK)
    job_store.transition_or_raise(
        clocked.db, "q1", S.CANCELLED, clock.now(), verb=job_store.V.CANCEL
    )
    put_job(S.RUNNING, id="d1", template="web", spec=PY_CHECK, attempts=1, dry_run=True)
    job_store.finish(clocked.db, "d1", 1, S.SUCCEEDED, clock.now(), values={"result": ok()})
    plain = {"name": "web", "runner": "python", "handler": "m:f"}
    put_job(S.RUNNING, id="p1", template="web", spec=plain, attempts=1)
    job_store.finish(clocked.db, "p1", 1, S.SUCCEEDED, clock.now(), values={"result": ok()})
    assert clocked.checks() == []


def test_a_retried_failure_is_not_a_result_until_its_last_attempt(
    clocked: OpsService, clock: SettableClock, put_job: PutJob
) -> None:
    put_job(S.RUNNING, id="r1", template="web", spec=PY_CHECK, attempts=1, max_retries=1)
    bad = {"result": {"status": "critical", "summary": "down"}}
    job_store.finish(clocked.db, "r1", 1, S.SCHEDULED, clock.now(), values=bad, kind="retried")
    assert clocked.checks() == []


def test_check_detail_lists_results_newest_first_and_an_unknown_name_is_not_found(
    clocked: OpsService, clock: SettableClock, put_job: PutJob
) -> None:
    first = end(clocked, clock, put_job, S.SUCCEEDED, ok("one"))
    second = end(clocked, clock, put_job, S.FAILED, {"status": "critical", "summary": "two"})
    detail = clocked.check("web")
    assert [(r.job_id, r.output) for r in detail.results] == [(second, "two"), (first, "one")]
    assert detail.to_dict()["results"][0]["status"] == "critical"
    with pytest.raises(NotFound, match="no check 'nope'"):
        clocked.check("nope")


def test_the_check_key_in_a_template() -> None:
    tpl = template_from_dict({**SHELL_CHECK})
    assert tpl.check is True
    assert tpl.partial_exit_codes == (1,)  # a plugin's warning ends its job partial
    assert template_from_dict({"name": "x", "command": ["true"]}).check is False
    with pytest.raises(SchemaError, match="check: must be true or false, got 'yes'"):
        template_from_dict({**SHELL_CHECK, "check": "yes"})
    ansible = {
        "name": "a",
        "runner": "ansible",
        "ansible": {"module": "ping", "inventory": "hosts.ini"},
        "check": True,
    }
    with pytest.raises(SchemaError, match="check: only for runner shell or python"):
        template_from_dict(ansible)


def test_statuses_rank_and_map_like_nagios() -> None:
    assert [status_of_exit(c) for c in (0, 1, 2, 3, 4, None)] == [
        "ok",
        "warning",
        "critical",
        "unknown",
        "unknown",
        "unknown",
    ]
    assert worst(["ok", "unknown", "warning"]) == "warning"
    assert worst(["warning", "critical", "unknown"]) == "critical"
    assert worst(["ok", "unknown"]) == "unknown"
    assert overall([]) == "ok"
