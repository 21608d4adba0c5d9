"""The public Python API (``opsconsole.connect``): what a program author relies on.

Run on both stores (``store_url``/``settings``); a real ``opsconsole worker`` process picks up
what the API submits.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import stop_processes, worker_env
from support import write_template

import opsconsole
from opsconsole.api import (
    FINAL,
    Client,
    InvalidParams,
    JobState,
    ListRequest,
    NotFound,
    SubmitRequest,
)
from opsconsole.config import Settings

BIN = Path(sys.executable).parent / "opsconsole"

HANDLER = "def run(ctx):\n    ctx.log('hello ' + str(ctx.params['who']))\n    return {'ok': 1}\n"


@pytest.fixture
def hello(catalog: Path, forget_handlers: None) -> str:
    """A trusted (``isolate: false``) Python handler template that logs and returns."""
    (catalog / "api_hello.py").write_text(HANDLER)
    write_template(
        catalog,
        "hello",
        "runner: python\nhandler: api_hello:run\nisolate: false\n"
        "params:\n  who: {type: string, default: world}\n",
    )
    return "hello"


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    with opsconsole.connect(settings=settings) as ops:
        yield ops


def _worker(settings: Settings, **extra: str) -> subprocess.Popen[bytes]:
    log = Path(settings.home) / "worker.out"
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BIN), "worker", "--workers", "2"],
            env=worker_env(settings, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_importing_the_package_imports_nothing_heavy() -> None:
    """``connect`` is a function that imports the API on its first call."""
    code = (
        "import sys, opsconsole\n"
        "assert callable(opsconsole.connect)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'alembic', 'typer', 'textual', 'rich') "
        "or m.startswith('opsconsole.'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_submit_get_and_list_through_the_api(client: Client, hello: str) -> None:
    job = client.submit(hello, {"who": "api"})
    assert job.state is JobState.QUEUED
    assert job.params == {"who": "api"}
    assert client.get(job.id).id == job.id
    assert client.get(job.id[:8]).id == job.id  # a unique prefix, like the CLI
    assert client.get(job).template == hello
    events = client.get(job, with_events=True).events
    assert events is not None and [e.kind for e in events] == ["submitted"]
    page = client.list_jobs(ListRequest(states=("queued",)))
    assert [v.id for v in page.jobs] == [job.id] and page.total == 1
    assert client.list_jobs().total == 1


def test_a_full_request_carries_its_options(client: Client, hello: str) -> None:
    job = client.submit(SubmitRequest(hello, {"who": "x"}, priority="high", tags=("api",)))
    seen = client.get(job)
    assert seen.tags == ["api"]
    assert seen.priority == job.priority and job.priority > 0


def test_connect_by_url_home_and_catalog(settings: Settings, hello: str) -> None:
    """The keyword form resolves like the CLI's flags (the rest from env/defaults)."""
    with opsconsole.connect(settings.db, home=settings.home, catalog=settings.catalog) as ops:
        assert ops.settings.db == settings.db
        job = ops.submit(hello)
    with opsconsole.connect(settings=settings) as again:
        assert again.get(job.id).params == {"who": "world"}


def test_bad_input_is_one_clear_error(client: Client, hello: str, settings: Settings) -> None:
    with pytest.raises(NotFound):
        client.submit("no-such-template")
    with pytest.raises(InvalidParams):
        client.submit(hello, {"nope": "1"})
    with pytest.raises(InvalidParams, match="inside the SubmitRequest"):
        client.submit(SubmitRequest(hello), {"who": "x"})
    with pytest.raises(NotFound):
        client.get("zzzzzzzz")
    with pytest.raises(InvalidParams):
        client.wait(client.submit(hello), timeout=-1)
    with pytest.raises(InvalidParams, match="either settings"):
        opsconsole.connect(settings.db, settings=settings)


def test_wait_that_runs_out_raises_and_leaves_the_job_alone(client: Client, hello: str) -> None:
    job = client.submit(hello)  # no worker runs it
    with pytest.raises(TimeoutError, match=f"job {job.id} is still queued"):
        client.wait(job, timeout=0.1)
    assert client.get(job).state is JobState.QUEUED
    assert client.cancel(job).state is JobState.CANCELLED


def test_a_separate_worker_process_runs_what_the_api_submits(
    client: Client, hello: str, settings: Settings
) -> None:
    """Its idle polling is an hour: only the submit's wake-up (the local datagram on SQLite,
    NOTIFY on PostgreSQL) can explain the pickup, and ``wait`` sees the end."""
    worker = _worker(settings, OPSCONSOLE_POLL_INTERVAL="3600")
    try:
        job = client.submit(hello, {"who": "program"})  # may come before the worker listens
        first = client.wait(job, timeout=60)
        assert first.state is JobState.SUCCEEDED and first.result == {"ok": 1}
        assert "hello program" in [line.text for line in client.logs(job)]
        # now the worker is surely idle and listening: this one needs the wake-up
        second = client.wait(client.submit(hello), timeout=60)
        assert second.state in FINAL and second.state is JobState.SUCCEEDED
    finally:
        stop_processes([worker])


@pytest.mark.sqlite_only
def test_a_worker_is_woken_whatever_spelling_of_the_store_the_program_used(
    settings: Settings, hello: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker was given ``sqlite:///ABS``; the program a relative bare path."""
    worker = _worker(settings, OPSCONSOLE_POLL_INTERVAL="3600")
    path = Path(settings.db.removeprefix("sqlite:///"))
    monkeypatch.chdir(path.parent)
    other = dataclasses.replace(settings, db=f"sqlite:///./{path.name}")
    try:
        with opsconsole.connect(settings=other) as ops:
            ops.wait(ops.submit(hello), timeout=60)  # the first: the worker may start late
            # idle now; an hour's poll: only a wake-up addressed to it gets this one started
            job = ops.submit(hello)
            done = ops.wait(job, timeout=10)
            assert done.state is JobState.SUCCEEDED
    finally:
        stop_processes([worker])


def test_wait_on_postgresql_wakes_on_the_stores_notification(
    client: Client,
    hello: str,
    settings: Settings,
    store_backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the safety-net look once an hour, only the job's NOTIFY can end the wait."""
    if store_backend != "postgresql":
        pytest.skip("PostgreSQL's notifications (SQLite's waiters look every 20 ms)")
    import opsconsole.api
    from opsconsole.core.store import notify

    monkeypatch.setattr(opsconsole.api, "NOTIFIED_WAIT_INTERVAL", 3600.0)
    # hold this process's LISTEN connection open and live before anything can finish
    release = client.service.on_change(lambda: None)
    try:
        assert notify.wait_connected(client.service.db, 30)
        job = client.submit(hello)
        worker = _worker(settings)
        try:
            assert client.wait(job, timeout=60).state is JobState.SUCCEEDED
        finally:
            stop_processes([worker])
    finally:
        release()
