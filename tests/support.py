"""Helpers shared by the tests: bounded waits and template files."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def write_template(catalog: Path, name: str, body: str) -> Path:
    """Write ``templates/<name>.yaml``; ``body`` is the YAML without the name line."""
    path = catalog / "templates" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"name: {name}\n{body}")
    return path


def stuck_in_a_system_call(catalog: Path, fifo: Path) -> str:
    """A template ``stuck`` whose in-thread handler blocks in ``open(fifo)``: it ignores
    cancellation and no exception can interrupt it until ``unstick(fifo)``."""
    import os

    os.mkfifo(fifo)
    (catalog / "stuck_handler.py").write_text(
        f"def run(ctx):\n    open({str(fifo)!r}).close()  # blocks until someone writes\n"
    )
    write_template(
        catalog,
        "stuck",
        "runner: python\nhandler: stuck_handler:run\nisolate: false\ntimeout: 0.3s\n",
    )
    return "stuck"


def unstick(fifo: Path) -> None:
    """Let a handler blocked by ``stuck_in_a_system_call`` return."""
    import os

    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def bystander_source(release: Path) -> str:
    """A handler module that says it is waiting, then waits for ``release`` to exist."""
    return (
        "import os, time\n\n"
        "def run(ctx):\n"
        '    ctx.progress(1, "waiting")\n'
        f"    while not os.path.exists({str(release)!r}):\n"
        "        time.sleep(0.01)\n"
        '    return "bystander done"\n'
    )


def submitted_by(service: Any, request: Any, who: str) -> str:
    """Submit ``request`` and record ``who`` as its submitter, as another login's submit
    would: a test of the four-eyes rule needs a job someone else asked for. (The end-to-end
    tests run the CLI as real second users; this keeps the unit tests in one process.)"""
    job = service.submit(request).id
    with service.db.write() as conn:
        conn.exec_driver_sql("UPDATE jobs SET submitted_by = ? WHERE id = ?", (who, job))
    return str(job)


def failed_job(service: Any, clock: Any, request: Any) -> str:
    """Submit, claim and fail a job as a worker would (its secrets are dropped at the end)."""
    from opsconsole.core.states import JobState
    from opsconsole.core.store import claim as claim_store
    from opsconsole.core.store import jobs as job_store

    job = service.submit(request)
    row = claim_store.claim(service.db, "w1", clock.now(), 30)
    assert row is not None and row["id"] == job.id
    end = job_store.finish(
        service.db, job.id, 1, JobState.FAILED, clock.now(), values={"exit_code": 1}
    )
    assert end is not None
    return str(job.id)
