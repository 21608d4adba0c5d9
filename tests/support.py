"""Helpers shared by the tests: bounded waits and template files."""

from __future__ import annotations

import os
import re
import stat
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
        sql(conn, "UPDATE jobs SET submitted_by = ? WHERE id = ?", (who, job))
    return str(job)


def sql(conn: Any, statement: str, params: tuple[Any, ...] = ()) -> Any:
    """Run a test's own SQL with ``?`` placeholders on either store (SQLite, PostgreSQL)."""
    import sqlalchemy as sa

    names = iter(range(len(params)))
    text = re.sub(r"\?", lambda _m: f":p{next(names)}", statement)
    return conn.execute(sa.text(text), {f"p{i}": v for i, v in enumerate(params)})


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


def files_holding(
    root: Path, needle: bytes, since: float = 0.0, skip: tuple[Path, ...] = ()
) -> list[Path]:
    """Files under ``root`` changed since ``since`` (a ``time.time()``) whose bytes, or whose
    zipped members (a saved Terraform plan is a zip), hold ``needle``.

    ``since`` keeps a scan of a shared directory such as the system temp dir to what the test
    could have written: reading every file a busy machine keeps there is slow and says nothing.
    """
    import zipfile

    found = []
    for dirpath, _dirs, names in os.walk(root):
        if any(Path(dirpath).is_relative_to(s) for s in skip):
            continue
        for name in names:
            path = Path(dirpath) / name
            try:
                st = path.lstat()
                if not stat.S_ISREG(st.st_mode) or st.st_mtime < since or st.st_size > 50_000_000:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            if needle in data:
                found.append(path)
            elif data[:2] == b"PK":
                try:
                    with zipfile.ZipFile(path) as zf:
                        if any(needle in zf.read(m) for m in zf.namelist()):
                            found.append(path)
                except (zipfile.BadZipFile, OSError):
                    continue
    return found


def run_interval(service: Any, job_id: str) -> tuple[float, float]:
    """(start, end) a job's run stamped in its own log as ``start T`` and ``end T`` lines:
    the run's own clock, so a run recorded before the next began never looks like overlap."""
    stamps = {}
    for line in service.logs_since(job_id):
        word, _, value = line.text.partition(" ")
        if word in ("start", "end"):
            stamps[word] = float(value)
    return stamps["start"], stamps["end"]
