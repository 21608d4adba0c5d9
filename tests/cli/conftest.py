"""CLI fixtures: the app invoked in-process on the test's store, and worker pools always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_support import Cli
from support import write_template
from typer.testing import CliRunner, Result

from opsconsole.cli.app import app
from opsconsole.cli.session import STATE
from opsconsole.config import Settings
from opsconsole.core.service import OpsService
from opsconsole.engine.pool import WorkerPool

FAST_ENV = {
    "OPSCONSOLE_POLL_INTERVAL": "0.05",
    "OPSCONSOLE_HEARTBEAT_INTERVAL": "0.2",
    "OPSCONSOLE_LEASE": "3",
    "OPSCONSOLE_KILL_GRACE": "0.5",
    "OPSCONSOLE_DRAIN_GRACE": "2",
}


@pytest.fixture(autouse=True)
def fresh_cli_state() -> Iterator[None]:
    """The CLI keeps its service in a module global: close it after every test."""
    yield
    svc = STATE._service
    if svc is not None:
        svc.db.dispose()
    STATE.reset({}, False)


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Invoke ``opsconsole --home H --db URL --catalog C ARGS...`` in this process."""
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    base = ["--home", str(settings.home), "--db", settings.db, "--catalog", str(settings.catalog)]

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, [*base, *args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def echo(catalog: Path) -> str:
    """A shell template that echoes its one optional parameter."""
    write_template(
        catalog,
        "echo",
        "runner: shell\ncommand: [echo, '{{ msg }}']\n"
        "params:\n  msg: {type: string, default: hi}\n",
    )
    return "echo"


@pytest.fixture
def fails(catalog: Path) -> str:
    """A shell template that always fails."""
    write_template(catalog, "fails", "runner: shell\ncommand: ['false']\n")
    return "fails"


@pytest.fixture
def secret(catalog: Path) -> str:
    """A template with a required secret parameter; fails so it can be retried."""
    write_template(
        catalog,
        "secretive",
        "runner: shell\ncommand: ['false']\nenv: {TOKEN: '{{ token }}'}\n"
        "params:\n  token: {type: string, secret: true, required: true}\n",
    )
    return "secretive"


@pytest.fixture
def start_pool(service: OpsService) -> Iterator[Callable[..., WorkerPool]]:
    """Start worker pools on ``service``; every one is stopped when the test ends."""
    pools: list[WorkerPool] = []

    def start(slots: int = 1) -> WorkerPool:
        pool = WorkerPool(service, slots=slots)
        pools.append(pool)
        return pool.start()

    yield start
    for pool in pools:
        pool.stop(grace=0.5)
