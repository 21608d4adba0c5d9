"""Fixtures: an isolated environment per test, real SQLite files, a settable clock."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opsconsole.config import Settings, load_settings
from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService
from opsconsole.core.store.db import Database, sqlite_path
from opsconsole.engine.fire_times import fire_times

REPO = Path(__file__).resolve().parents[1]

FAST = {
    "poll_interval": 0.05,
    "heartbeat_interval": 0.2,
    "lease": 3.0,
    "kill_grace": 0.5,
    "drain_grace": 2.0,
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store",
        choices=("sqlite", "postgresql"),
        default=os.environ.get("OPSCONSOLE_TEST_STORE", "sqlite"),
        help="the backend of the store the tests use (store_url, settings, service)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--store") == "postgresql":
        # the console's snapshot tests run on SQLite only (their screens name the store):
        # their snapshots are unused here, which syrupy would otherwise count as a failure
        config.option.warn_unused_snapshots = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, run the tests that use the store under test: the others would repeat the
    SQLite run exactly (the PostgreSQL-only tests, on ``pg_url``, run in the default run)."""
    if config.getoption("--store") != "postgresql":
        return
    keep, drop = [], []
    for item in items:
        uses = getattr(item, "fixturenames", ())
        sqlite_only = item.get_closest_marker("sqlite_only") is not None or "db_path" in uses
        (keep if "store_url" in uses and not sqlite_only else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header(config: pytest.Config) -> str:
    return f"opsconsole store backend: {config.getoption('--store')}"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OPSCONSOLE_* from the caller's shell; no ./data or ./opsconsole.toml by accident."""
    for key in list(os.environ):
        if key.startswith("OPSCONSOLE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    yield
    from opsconsole.engine import supervise

    supervise.configure(None)  # a pool's start sets it for the process: not for the next test


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most operators have (022): files opsconsole makes must be private anyway."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; tests get copies (migrating each time is slow)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    db.ensure_schema()
    db.dispose()  # closing the last connection checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "catalog"
    (path / "templates").mkdir(parents=True)
    return path


@pytest.fixture(scope="session")
def store_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``: ``pytest --store=postgresql`` runs the suite on the latter."""
    return str(request.config.getoption("--store"))


@pytest.fixture(scope="session")
def pg_template(store_backend: str, request: pytest.FixtureRequest) -> str | None:
    """On PostgreSQL, a migrated database that each test's database is copied from."""
    if store_backend != "postgresql":
        return None
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    db = Database(url)
    db.ensure_schema()
    db.dispose()  # a template must have no open session when it is copied
    import sqlalchemy as sa

    return str(sa.make_url(url).database)


@pytest.fixture
def store_url(
    store_backend: str, home: Path, migrated_db: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """The URL of a migrated, empty store of the backend under test, private to this test."""
    if store_backend == "sqlite":
        path = home / "opsconsole.db"
        shutil.copyfile(migrated_db, path)
        path.chmod(0o600)  # as opsconsole makes a store: a looser one is tightened, and said so
        yield f"sqlite:///{path}"
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database(template=request.getfixturevalue("pg_template"))
    yield url
    cluster.drop_database(url)


@pytest.fixture
def db_path(store_url: str, store_backend: str) -> Path:
    """The store's SQLite file, for the tests about the file itself (locks, bytes, modes)."""
    if store_backend != "sqlite":
        pytest.skip("about the SQLite store file")
    path = sqlite_path(store_url)
    assert path is not None
    return path


@pytest.fixture
def settings(home: Path, catalog: Path, store_url: str) -> Settings:
    return load_settings(home=home, catalog=catalog, db=store_url, **FAST)


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def service(settings: Settings) -> Iterator[OpsService]:
    """A service on the system clock (for tests that run real jobs)."""
    db = Database(settings.db)
    yield OpsService(settings, db, fire_times=fire_times)
    db.dispose()


@pytest.fixture
def clocked(settings: Settings, clock: SettableClock) -> Iterator[OpsService]:
    """A service whose time only moves when the test says so."""
    db = Database(settings.db)
    yield OpsService(settings, db, clock=clock, fire_times=fire_times)
    db.dispose()


@pytest.fixture
def forget_handlers(catalog: Path) -> Iterator[None]:
    """Handlers are imported from the catalog dir: unimport them and drop it from sys.path."""
    import sys

    before = set(sys.modules)
    yield
    root = str(catalog)
    while root in sys.path:
        sys.path.remove(root)
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules.get(name), "__file__", "") or "").startswith(root):
            del sys.modules[name]


@pytest.fixture
def handler(catalog: Path, forget_handlers: None) -> Callable[..., str]:
    """Write a handler module into the catalog dir; returns ``module:function``."""
    import textwrap
    import uuid

    def write(source: str, func: str = "run") -> str:
        name = f"handlers_{uuid.uuid4().hex[:10]}"
        (catalog / f"{name}.py").write_text(textwrap.dedent(source))
        return f"{name}:{func}"

    return write


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """A private PostgreSQL cluster for the session (see ``pg_support``)."""
    from pg_support import start_cluster

    yield from start_cluster()


@pytest.fixture
def pg_url(pg_cluster: Any) -> str:
    """The URL of a new, empty PostgreSQL database."""
    return str(pg_cluster.create_database())
