"""The standard-library glance completion takes at a store: read-only, never creating one,
reading the same file SQLAlchemy would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support import write_template

from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import LIVE
from opsconsole.core.store.db import sqlite_path
from opsconsole.core.store.peek import LIVE_ORDER, JobRef, job_refs, sqlite_file


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/ops/opsconsole.db",
        "sqlite:///relative/opsconsole.db",
        "sqlite+pysqlite:////srv/a%20b/ops.db",
        "sqlite:////srv/ops.db?timeout=5",
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file:ops.db?mode=ro&uri=true",
        "postgresql://ops@db.example/ops",
        "postgresql+psycopg://ops@db.example:5432/ops",
    ],
)
def test_the_store_file_is_the_one_sqlalchemy_opens(url):
    assert sqlite_file(url) == sqlite_path(url)


def test_every_live_state_is_ranked():
    assert set(LIVE_ORDER) == {s.value for s in LIVE}
    assert LIVE_ORDER[:3] == ("running", "awaiting_approval", "queued")


def test_a_missing_store_is_an_error_and_is_not_created(tmp_path: Path):
    missing = tmp_path / "none.db"
    with pytest.raises(sqlite3.OperationalError):
        job_refs(missing)
    assert not missing.exists()


def test_jobs_are_read_by_prefix_and_nothing_is_written(
    service: OpsService, catalog: Path, db_path: Path
):
    write_template(catalog, "hello", "runner: shell\ncommand: [echo, hi]\n")
    ids = [service.submit(SubmitRequest(template="hello")).id for _ in range(3)]
    files = [db_path, db_path.with_name(db_path.name + "-wal")]
    before = [f.read_bytes() for f in files]
    refs = job_refs(db_path)
    assert sorted(r.id for r in refs) == sorted(ids)
    assert all(r == JobRef(r.id, "hello", "queued") for r in refs)
    assert [r.id for r in job_refs(db_path, ids[0])] == [ids[0]]
    assert job_refs(db_path, "zzzzzzz") == []
    assert job_refs(db_path, live=0) == []
    assert [f.read_bytes() for f in files] == before
