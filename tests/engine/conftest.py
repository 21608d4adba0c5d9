"""Engine fixtures: worker pools that are always stopped, and no handler module left behind."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from opsconsole.config import Settings
from opsconsole.core.service import OpsService
from opsconsole.core.store.db import Database
from opsconsole.engine import supervise
from opsconsole.engine.pool import WorkerPool


@pytest.fixture
def start_pool(service: OpsService) -> Iterator[Callable[..., WorkerPool]]:
    """Start worker pools on ``service``; every one is stopped when the test ends."""
    pools: list[WorkerPool] = []

    def start(slots: int = 1, **kw: Any) -> WorkerPool:
        pool = WorkerPool(service, slots=slots, **kw)
        pools.append(pool)
        return pool.start()

    yield start
    for pool in pools:
        pool.stop(grace=0.5)


@pytest.fixture(autouse=True)
def _unimport_handlers(forget_handlers: None) -> None:
    """Every engine test may import handlers from its catalog: forget them afterwards."""


@pytest.fixture
def impatient(settings: Settings) -> Iterator[OpsService]:
    """A service whose store gives up on another process's write lock after 0.3 s."""
    db = Database(settings.db, busy_timeout=0.3)
    yield OpsService(settings, db)
    db.dispose()


@pytest.fixture(scope="module", autouse=True)
def jobs_dir_removed_if_we_made_it() -> Iterator[None]:
    """The job cgroups' parent stays for workers; remove it if these tests created it."""
    root = supervise.jobs_root()
    existed = root is None or root.exists()
    yield
    if not existed and root is not None:
        with contextlib.suppress(OSError):  # busy: a worker on this host is using it
            root.rmdir()
