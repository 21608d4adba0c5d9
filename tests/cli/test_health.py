"""``health`` as a monitor sees it: every answer is JSON with the same keys and exit 0 or 1.

The faults are real: a store file that is not SQLite, a read-only bind mount or a read-only
tmpfs that refuses every write (root included), a small tmpfs holding the store while
$OPSCONSOLE_HOME sits on the big disk, and a second process holding the write lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import ok
from store_faults import tmpfs, write_lock
from support import write_template
from typer.testing import CliRunner, Result

from opsconsole.cli.app import app

CHECK_KEYS = {"name", "ok", "detail"}


def health_json(result: Result, code: int) -> dict[str, Any]:
    """The ``--json`` answer, checked for the shape monitors rely on."""
    ok(result, code)
    assert "Traceback" not in result.output
    answer = json.loads(result.stdout)
    assert set(answer) == {"healthy", "checks"}
    assert answer["healthy"] is (code == 0)
    for check in answer["checks"]:
        assert set(check) == CHECK_KEYS
        assert isinstance(check["name"], str) and isinstance(check["detail"], str)
        assert isinstance(check["ok"], bool)
    assert answer["healthy"] is all(c["ok"] for c in answer["checks"])
    return answer


def check(answer: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [c for c in answer["checks"] if c["name"] == name]
    return found


def opsconsole(home: Path, db: Path, catalog: Path, *args: str) -> Result:
    """The command with its store and catalog given, in this process."""
    base = ["--home", str(home), "--db", f"sqlite:///{db}", "--catalog", str(catalog)]
    return CliRunner().invoke(app, [*base, *args], catch_exceptions=False)


@contextlib.contextmanager
def read_only_bind(path: Path) -> Iterator[Path]:
    """Bind-mount ``path`` on itself read-only: the kernel refuses writes, even root's."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True, capture_output=True)
    try:
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(path)], check=True, capture_output=True
        )
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True, capture_output=True)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True, capture_output=True)


def test_a_healthy_store_passes_every_check(cli, echo):
    answer = health_json(cli("health", "--json"), 0)
    assert [c["name"] for c in answer["checks"]] == [
        "store",
        "workers",
        "key",
        "retention",
        "files",
        "disk",
        "catalog",
        "terraform",
    ]
    assert check(answer, "store")["detail"].endswith("(read and write)")
    assert check(answer, "catalog")["detail"].startswith("1 template(s) in ")


def test_a_corrupt_store_fails_the_store_check_with_json(cli, db_path, catalog):
    db_path.write_bytes(b"this is not an SQLite database\n" * 200)
    answer = health_json(cli("health", "--json"), 1)
    store = check(answer, "store")
    assert store["ok"] is False
    assert store["detail"] == f"store sqlite:{db_path}: file is not a database"
    assert [c["name"] for c in answer["checks"]] == ["store", "disk", "catalog"]
    assert check(answer, "disk")["detail"].endswith(f"at {db_path.parent}")
    text = ok(cli("health"), 1)
    assert text.stdout.splitlines()[0] == f"FAIL store    {store['detail']}"
    assert text.stderr == ""


def test_a_read_only_store_file_fails_the_store_check(cli, db_path, echo):
    with read_only_bind(db_path):
        answer = health_json(cli("health", "--json"), 1)
        store = check(answer, "store")
        assert store["ok"] is False
        assert "attempt to write a readonly database" in store["detail"]
        assert "not submitted or recorded" in store["detail"]
        assert check(answer, "workers")["ok"] is True  # reads still work
        ok(cli("submit", echo), 5)  # as health said: the submit fails


def test_a_store_on_a_read_only_file_system_fails_the_store_check(tmp_path, catalog, echo):
    home = tmp_path / "home"
    home.mkdir()
    with tmpfs(tmp_path / "ro", "16m") as mounted:
        db = mounted / "ops.db"
        base = ["--home", str(home), "--db", f"sqlite:///{db}", "--catalog", str(catalog)]
        made = subprocess.run(  # its own process: no connection left open to block the remount
            [sys.executable, "-m", "opsconsole", *base, "submit", echo],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        remount(mounted, "ro")
        try:
            answer = health_json(opsconsole(home, db, catalog, "health", "--json"), 1)
        finally:
            remount(mounted, "rw")
    store = check(answer, "store")
    assert store["ok"] is False
    assert store["detail"].startswith(f"store sqlite:{db}: ")
    assert store["detail"].endswith(f"({mounted} is on a read-only file system)")
    assert f"at {mounted}:" in check(answer, "disk")["detail"]  # a small disk, as well


def test_the_disk_check_looks_where_the_store_is(tmp_path, catalog):
    home = tmp_path / "home"  # on the big disk
    home.mkdir()
    with tmpfs(tmp_path / "small", "64m") as small:
        answer = health_json(opsconsole(home, small / "ops.db", catalog, "health", "--json"), 1)
    disk = check(answer, "disk")
    assert disk["ok"] is False
    assert f"at {small}: below 256 MiB or 2% free" in disk["detail"]
    assert check(answer, "store")["ok"] is True
    assert [c["name"] for c in answer["checks"] if not c["ok"]] == ["disk"]


def test_a_broken_template_fails_the_catalog_check(cli, catalog, echo):
    broken = write_template(catalog, "broken", "runner: shell\ncommand: [echo\n")
    answer = health_json(cli("health", "--json"), 1)
    catalog_check = check(answer, "catalog")
    assert catalog_check["ok"] is False
    assert catalog_check["detail"].startswith(f"1 problem(s) in {catalog}: {broken}:")
    assert [c["name"] for c in answer["checks"] if not c["ok"]] == ["catalog"]


def test_a_missing_catalog_fails_the_catalog_check(cli, tmp_path):
    nowhere = tmp_path / "nowhere"
    answer = health_json(cli("--catalog", str(nowhere), "health", "--json"), 1)
    assert check(answer, "catalog") == {
        "name": "catalog",
        "ok": False,
        "detail": f"{nowhere}: catalog directory {nowhere} does not exist: create it with "
        "templates/ inside, or set OPSCONSOLE_CATALOG / --catalog to the catalog you mean",
    }


def test_an_empty_catalog_is_healthy(cli, catalog):
    answer = health_json(cli("health", "--json"), 0)
    assert check(answer, "catalog")["detail"] == f"no templates yet in {catalog / 'templates'}"


@pytest.mark.slow
def test_a_store_locked_past_the_wait_fails_the_store_check(cli, db_path):
    with write_lock(db_path):
        answer = health_json(cli("health", "--json"), 1)
    store = check(answer, "store")
    assert "database is locked: another process held its write lock for 10s" in store["detail"]
    assert health_json(cli("health", "--json"), 0)["healthy"] is True
