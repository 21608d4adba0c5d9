"""The store you meant, or a clear error: where a store may be made, that it is made
private and said, a store removed under a running worker, and a wait on a locked store."""

from __future__ import annotations

import grp
import json
import logging
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from cli_support import installed, ok, on_a_terminal, one_error_line, submit
from store_faults import write_lock
from support import write_template
from typer.testing import CliRunner

from opsconsole.cli.app import app
from opsconsole.cli.session import notice
from opsconsole.config import Settings
from opsconsole.core.errors import StoreUnavailable
from opsconsole.core.service import OpsService


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def bare(*args: str, env: dict[str, str] | None = None):
    """The command with no --home/--db: the store comes from the environment or the default."""
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def test_a_mistyped_store_path_is_refused_and_nothing_is_made(tmp_path: Path):
    path = tmp_path / "nonexistent" / "dir" / "x.db"
    result = ok(bare("jobs", "list", env={"OPSCONSOLE_DB": str(path)}), 5)
    line = one_error_line(result)
    assert line == (
        f"opsconsole: error: store sqlite:{path}: the directory {path.parent} does not exist "
        "(create it, or correct --db / OPSCONSOLE_DB)"
    )
    assert not (tmp_path / "nonexistent").exists()


def test_the_default_home_is_made_private_with_its_parents(tmp_path: Path, usual_umask: None):
    xdg = tmp_path / "xdg"  # XDG_DATA_HOME, which does not exist yet
    home = xdg / "opsconsole"
    result = ok(bare("jobs", "list", "--json"))
    assert result.stderr == f"opsconsole: created a new store at {home / 'opsconsole.db'}\n"
    assert json.loads(result.stdout)["jobs"] == []  # stdout stays pure JSON
    assert (mode(xdg), mode(home), mode(home / "opsconsole.db")) == (0o700, 0o700, 0o600)
    again = ok(bare("jobs", "list"))
    assert again.stderr == ""  # the second time it is not news


def test_a_given_home_is_made_only_if_its_parent_exists(tmp_path: Path, usual_umask: None):
    home = tmp_path / "state"
    result = ok(bare("--home", str(home), "jobs", "list"))
    assert result.stderr == f"opsconsole: created a new store at {home / 'opsconsole.db'}\n"
    assert mode(home) == 0o700
    deep = tmp_path / "typo" / "state"
    line = one_error_line(ok(bare("--home", str(deep), "jobs", "list"), 5))
    assert f"store sqlite:{deep / 'opsconsole.db'}: the directory {deep} does not exist" in line
    assert not (tmp_path / "typo").exists()


def test_a_store_removed_under_a_running_worker(
    cli, echo, service: OpsService, start_pool, db_path: Path
):
    """Today: `jobs list` silently makes a new empty store (exit 0) and the worker goes on
    with the deleted file. Now the command says it made a new store, and the worker's
    Database can tell that its file is gone."""
    start_pool(slots=1)
    submit(cli, echo)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    result = ok(cli("jobs", "list", "--json"))
    assert result.stderr == f"opsconsole: created a new store at {db_path}\n"
    assert json.loads(result.stdout)["jobs"] == []
    with pytest.raises(StoreUnavailable, match="was replaced by another file"):
        service.db.check_file()


def test_a_looser_store_is_made_private_and_said(cli, db_path: Path):
    db_path.chmod(0o644)
    result = ok(cli("jobs", "list"))
    assert f"opsconsole: {db_path} is open to group " in result.stderr
    assert "every local user (mode 0644): made it 0600" in result.stderr
    assert mode(db_path) == 0o600


# -- a locked store --------------------------------------------------------------------------


def test_a_passing_wait_is_said_only_on_a_terminal(capsys, caplog):
    caplog.set_level(logging.INFO, logger="opsconsole.store")
    notice("waiting for store sqlite:/x.db: another process holds its write lock", transient=True)
    notice("created a new store at /x.db")
    err = capsys.readouterr().err
    assert err == "opsconsole: created a new store at /x.db\n"  # stderr is not a terminal here
    assert [r.getMessage() for r in caplog.records] == [
        "waiting for store sqlite:/x.db: another process holds its write lock"
    ]


def test_a_locked_store_is_said_on_the_terminal_then_the_command_goes_on(
    settings: Settings, echo: str, db_path: Path, service: OpsService
):
    """The installed command on a real pseudo-terminal, another process holding the lock."""
    argv = installed(
        settings,
        "submit",
        echo,
    )
    with write_lock(db_path) as lock:
        seen, code, _ = on_a_terminal(
            argv, b"another process holds its write lock", lambda _fd: lock.release()
        )
    text = seen.decode(errors="replace")
    assert f"opsconsole: waiting for store sqlite:{db_path}: another process holds" in text
    assert code == 0, text
    assert [j.template for j in service.queue()] == [echo]


def test_share_group_makes_the_state_one_group_s(tmp_path: Path, catalog: Path, usual_umask):
    """Several operators on one host: the setting reaches the directory, store and key."""
    if os.geteuid() != 0:
        pytest.skip("giving files to another group needs root here")
    group = next(g for g in grp.getgrall() if g.gr_gid != os.getgid())
    write_template(
        catalog,
        "login",
        "runner: shell\ncommand: ['true']\nparams:\n  token: {type: string, secret: true}\n",
    )
    home = tmp_path / "shared"
    env = {
        "OPSCONSOLE_HOME": str(home),
        "OPSCONSOLE_CATALOG": str(catalog),
        "OPSCONSOLE_SHARE_GROUP": group.gr_name,
    }
    ok(bare("submit", "login", "-p", "token=abcdef", env=env))
    # a command closes its connections at its end, and the last one to close removes the
    # -wal file: hold a reader open, as a running worker does, so that the file is there
    reader = sqlite3.connect(home / "opsconsole.db")
    try:
        reader.execute("SELECT count(*) FROM jobs").fetchone()
        found = {
            p.name: (stat.S_IMODE(p.stat().st_mode), p.stat().st_gid)
            for p in (home, home / "opsconsole.db", home / "opsconsole.db-wal", home / "secret.key")
        }
    finally:
        reader.close()
    assert found == {
        "shared": (0o2770, group.gr_gid),
        "opsconsole.db": (0o660, group.gr_gid),
        "opsconsole.db-wal": (0o660, group.gr_gid),
        "secret.key": (0o640, group.gr_gid),
    }
    health = json.loads(ok(bare("health", "--json", env=env), 1).stdout)  # no worker yet
    [files] = [c for c in health["checks"] if c["name"] == "files"]
    assert files == {
        "name": "files",
        "ok": True,
        "detail": f"store files shared with group {group.gr_name} (0660)",
    }
    line = one_error_line(
        ok(bare("jobs", "list", env={**env, "OPSCONSOLE_SHARE_GROUP": "nope-x"}), 2)
    )
    assert line == "opsconsole: error: share_group: no group 'nope-x' on this host"
