"""The queues under test, each behind one small interface the workloads drive.

A subject makes a fresh store in ``workdir`` (``prepare``), starts its worker process with
4 slots (``start``), enqueues one job per call (``submit``: ``noop`` or ``nap``, the 50 ms
sleep) from this process, and stops its worker (``stop``). Every job appends a line to the
marks file (``bench_marks``), which is how the bench sees jobs start and end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

PEERS = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(PEERS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


class Subject:
    """One queue; ``name`` is the column of the table."""

    name = "?"
    store = "?"
    raw = False
    """A raw limit: a floor for the queues, not a queue (no pickup or sleep rows)."""

    def __init__(self, workdir: Path, marks: Path, slots: int, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.marks = marks
        self.slots = slots
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    # -- to implement
    def prepare(self) -> None:
        raise NotImplementedError

    def worker_argv(self) -> list[str]:
        raise NotImplementedError

    def worker_env(self) -> dict[str, str]:
        return {}

    def submit(self, kind: str, tag: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what ``prepare`` opened in this process."""

    # -- shared
    def start(self) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{self.name.replace(' ', '_')}.worker.log").open("ab")
        self.proc = subprocess.Popen(
            self.worker_argv(),
            env=child_env(BENCH_MARKS=str(self.marks), **self.env, **self.worker_env()),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,  # Ctrl-C in the terminal is the bench's to handle
        )
        log.close()
        return self.proc

    def stop(self) -> None:
        """TERM, then KILL after 20 s; the whole process group (prefork children too)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            proc.wait(timeout=10)


class Opsconsole(Subject):
    """``opsconsole worker --workers 4``; submits through ``opsconsole.connect()``."""

    TEMPLATES = {
        "noop": "runner: python\nhandler: bench_marks:noop\nisolate: false\n",
        "nap": "runner: python\nhandler: bench_marks:nap\nisolate: false\n",
    }

    def __init__(self, *args: Any, url: str | None = None) -> None:
        super().__init__(*args)
        self.url = url
        self.client: Any = None

    def prepare(self) -> None:
        import opsconsole

        home = self.workdir / "home"
        catalog = self.workdir / "catalog"
        (catalog / "templates").mkdir(parents=True)
        home.mkdir()
        for name, body in self.TEMPLATES.items():
            params = "params:\n  i: {type: string, default: '-'}\n"
            (catalog / "templates" / f"{name}.yaml").write_text(f"name: {name}\n{body}{params}")
        db = self.url or f"sqlite:///{home / 'opsconsole.db'}"
        self.home, self.catalog, self.db = home, catalog, db
        self.client = opsconsole.connect(db, home=home, catalog=catalog)

    def worker_env(self) -> dict[str, str]:
        return {
            "OPSCONSOLE_HOME": str(self.home),
            "OPSCONSOLE_DB": self.db,
            "OPSCONSOLE_CATALOG": str(self.catalog),
        }

    def worker_argv(self) -> list[str]:
        return [str(BIN / "opsconsole"), "worker", "--workers", str(self.slots)]

    def submit(self, kind: str, tag: str) -> None:
        self.client.submit(kind, {"i": tag})

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


class OpsSqlite(Opsconsole):
    name, store = "opsconsole SQLite", "sqlite"


class OpsPostgres(Opsconsole):
    name, store = "opsconsole PostgreSQL", "postgresql"


class Huey(Subject):
    name, store = "Huey (SQLite)", "sqlite"

    def prepare(self) -> None:
        self.env["BENCH_HUEY_DB"] = str(self.workdir / "huey.db")
        os.environ["BENCH_HUEY_DB"] = self.env["BENCH_HUEY_DB"]
        sys.modules.pop("huey_app", None)  # a fresh store per run
        if str(PEERS) not in sys.path:
            sys.path.insert(0, str(PEERS))
        import huey_app

        self.app = huey_app

    def worker_argv(self) -> list[str]:
        return [str(BIN / "huey_consumer"), "huey_app.huey", "-w", str(self.slots), "-k", "thread"]

    def submit(self, kind: str, tag: str) -> None:
        getattr(self.app, kind)(tag)

    def close(self) -> None:
        self.app.huey.storage.close()


class Procrastinate(Subject):
    name, store = "Procrastinate (PG)", "postgresql"

    def __init__(self, *args: Any, dsn: str) -> None:
        super().__init__(*args)
        self.env["BENCH_PG_DSN"] = dsn

    def prepare(self) -> None:
        os.environ["BENCH_PG_DSN"] = self.env["BENCH_PG_DSN"]
        sys.modules.pop("procrastinate_app", None)
        if str(PEERS) not in sys.path:
            sys.path.insert(0, str(PEERS))
        import procrastinate_app

        self.app = procrastinate_app
        self.opened = procrastinate_app.app.open()
        self.opened.__enter__()
        procrastinate_app.app.schema_manager.apply_schema()

    def worker_argv(self) -> list[str]:
        return [
            str(BIN / "procrastinate"),
            "--app=procrastinate_app.app",
            "worker",
            f"--concurrency={self.slots}",
        ]

    def submit(self, kind: str, tag: str) -> None:
        getattr(self.app, kind).defer(i=tag)

    def close(self) -> None:
        self.opened.__exit__(None, None, None)


class Celery(Subject):
    name, store = "Celery (Redis)", "redis"

    def __init__(self, *args: Any, redis_url: str) -> None:
        super().__init__(*args)
        self.env["BENCH_REDIS_URL"] = redis_url

    def prepare(self) -> None:
        import redis

        redis.Redis.from_url(self.env["BENCH_REDIS_URL"]).flushdb()
        os.environ["BENCH_REDIS_URL"] = self.env["BENCH_REDIS_URL"]
        sys.modules.pop("celery_app", None)
        if str(PEERS) not in sys.path:
            sys.path.insert(0, str(PEERS))
        import celery_app

        self.app = celery_app

    def worker_argv(self) -> list[str]:
        return [
            str(BIN / "celery"),
            "-A",
            "celery_app",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            str(self.slots),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ]

    def submit(self, kind: str, tag: str) -> None:
        getattr(self.app, kind).delay(tag)

    def close(self) -> None:
        self.app.app.close()


class RawSqlite(Subject):
    name, store, raw = "raw sqlite3", "sqlite", True

    def prepare(self) -> None:
        import raw_sqlite

        self.path = str(self.workdir / "raw.db")
        raw_sqlite.setup(self.path)
        self.sub = raw_sqlite.Submitter(self.path)

    def worker_argv(self) -> list[str]:
        return [sys.executable, str(PEERS / "raw_sqlite.py"), self.path, "--slots", str(self.slots)]

    def submit(self, kind: str, tag: str) -> None:
        self.sub.submit(kind, tag)

    def close(self) -> None:
        self.sub.close()


class RawPsycopg(Subject):
    name, store, raw = "raw psycopg", "postgresql", True

    def __init__(self, *args: Any, dsn: str) -> None:
        super().__init__(*args)
        self.dsn = dsn

    def prepare(self) -> None:
        import raw_psycopg

        raw_psycopg.setup(self.dsn)
        self.sub = raw_psycopg.Submitter(self.dsn)

    def worker_argv(self) -> list[str]:
        return [sys.executable, str(PEERS / "raw_psycopg.py"), self.dsn, "--slots", str(self.slots)]

    def submit(self, kind: str, tag: str) -> None:
        self.sub.submit(kind, tag)

    def close(self) -> None:
        self.sub.close()


def new_database(admin_dsn: str) -> str:
    """A new empty database on the bench's PostgreSQL cluster; its libpq DSN."""
    import psycopg

    name = f"b_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # our own name, quoted
    return psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)


def drop_database(admin_dsn: str, dsn: str) -> None:
    import psycopg

    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlalchemy_url(dsn: str) -> str:
    """The SQLAlchemy URL of a libpq DSN on a Unix socket (opsconsole's store URL form)."""
    import psycopg

    d = psycopg.conninfo.conninfo_to_dict(dsn)
    where = f"host={d['host']}&port={d.get('port', 5432)}"
    return f"postgresql+psycopg://{d['user']}@/{d['dbname']}?{where}"
