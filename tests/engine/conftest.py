"""Engine fixtures: worker pools that are always stopped, and no handler module left behind."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opsconsole.core.service import OpsService
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
def forget_handlers(catalog: Path) -> Iterator[None]:
    """Handlers are imported from the catalog dir: unimport them and drop it from sys.path."""
    before = set(sys.modules)
    yield
    root = str(catalog)
    while root in sys.path:
        sys.path.remove(root)
    for name in set(sys.modules) - before:
        mod = sys.modules.get(name)
        if str(getattr(mod, "__file__", "") or "").startswith(root):
            del sys.modules[name]
