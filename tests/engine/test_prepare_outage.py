"""A store that is away while a claimed job's run is prepared (the approval gate's read, the
secrets' key) is waited out, not taken for the job's failure.

Found under load by ``tests/e2e/test_pg_outage.py``: a job whose slot read the secrets' key as
PostgreSQL shut down ended ``failed`` with the server's "terminating connection". Timing a
real server's shutdown into that one read cannot be made certain, so here the gate's store
call fails the way the store layer reports a server that is away (``StoreUnavailable`` with
``away``), then answers through the real service; everything else is real.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import write_template

from opsconsole.core.errors import StoreUnavailable
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.store import jobs as job_store
from opsconsole.engine.attempt import AttemptEnv, Run, prepare
from opsconsole.engine.context import RunResult


def _env(service: OpsService, gate: Callable[[dict[str, Any]], str | None]) -> AttemptEnv:
    return AttemptEnv(
        db=service.db,
        settings=service.settings,
        clock=service.clock,
        box=lambda: service.box,
        stopping=threading.Event(),
        abandon=lambda _run: None,
        refusal=service.catalog_refusal,
        gate=gate,
    )


class AwayFor:
    """The real gate, after the store was away for the first ``tries`` calls."""

    def __init__(self, service: OpsService, tries: int, *, away: bool = True) -> None:
        self.service, self.left, self.away, self.calls = service, tries, away, 0
        self.failing = threading.Event()

    def __call__(self, row: dict[str, Any]) -> str | None:
        self.calls += 1
        if self.left:
            self.left -= 1
            self.failing.set()
            raise StoreUnavailable("store x: terminating connection", away=self.away)
        return self.service.gate_refusal(row)


@pytest.fixture
def run(service: OpsService, catalog: Path) -> Run:
    write_template(
        catalog, "echo", "runner: shell\ncommand: [echo, '{{ word }}']\nparams:\n  word: {}\n"
    )
    job = service.submit(SubmitRequest("echo", {"word": "hi"}))
    with service.db.read() as conn:
        row = job_store.fetch(conn, job.id)
    assert row is not None
    return Run(job_id=job.id, attempt=1, row=dict(row))


def test_a_store_away_while_preparing_is_waited_out(service: OpsService, run: Run) -> None:
    gate = AwayFor(service, 3)
    prepared = prepare(_env(service, gate), run)
    assert not isinstance(prepared, RunResult), prepared
    tpl, params = prepared
    assert (tpl.name, params["word"], gate.calls) == ("echo", "hi", 4)


def test_a_stop_while_waiting_for_the_store_ends_the_attempt_that_way(
    service: OpsService, run: Run
) -> None:
    gate = AwayFor(service, 10**6)
    result: list[Any] = []
    waiter = threading.Thread(target=lambda: result.append(prepare(_env(service, gate), run)))
    waiter.start()
    assert gate.failing.wait(10)
    run.stop.set("cancelled", "cancelled by alice")
    waiter.join(10)
    assert not waiter.is_alive()
    [ended] = result
    assert isinstance(ended, RunResult) and ended.outcome == "cancelled"
    assert ended.message.startswith("cancelled by alice while its run waited for the store")


def test_the_workers_shutdown_while_waiting_interrupts_the_attempt(
    service: OpsService, run: Run
) -> None:
    env = _env(service, AwayFor(service, 10**6))
    env.stopping.set()
    ended = prepare(env, run)
    assert isinstance(ended, RunResult) and ended.outcome == "interrupted"
    assert "the worker shut down" in ended.message


def test_a_refusal_that_waiting_does_not_change_fails_the_job(
    service: OpsService, run: Run
) -> None:
    ended = prepare(_env(service, AwayFor(service, 1, away=False)), run)
    assert isinstance(ended, RunResult) and ended.outcome == "failed"
    assert ended.error is not None and ended.error["kind"] == "setup"
