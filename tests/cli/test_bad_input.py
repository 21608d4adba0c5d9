"""Refused input: one line on stderr, the right exit code, no traceback, nothing stored.

Also hostile parameter values, which must reach a command as whole argv items only.
"""

from __future__ import annotations

import contextlib
import sqlite3

import pytest
from cli_support import as_json, ok, one_error_line, submit
from support import write_template


@pytest.fixture
def strict(catalog):
    write_template(
        catalog,
        "strict",
        "runner: shell\ncommand: [echo, '{{ name }}', '{{ count }}']\n"
        "params:\n"
        "  name: {type: string, required: true, pattern: '^[a-z]+$'}\n"
        "  count: {type: integer, default: 1, min: 1, max: 5}\n",
    )
    return "strict"


def store_state(cli, db_path):
    """What a refused command must not change: the listed total and the rows in the file."""
    total = as_json(cli("jobs", "list", "--json"))["total"]
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        rows = tuple(
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("jobs", "job_events", "job_deps", "job_logs")
        )
    return total, rows


BAD = [
    pytest.param(["submit", "nope"], 3, "unknown template 'nope'", id="unknown-template"),
    pytest.param(["jobs", "show", "zzzzzz"], 3, "no job matches 'zzzzzz'", id="unknown-job"),
    pytest.param(["jobs", "cancel", "zzzzzz"], 3, "zzzzzz", id="cancel-unknown-job"),
    pytest.param(["logs", "zzzzzz"], 3, "zzzzzz", id="logs-unknown-job"),
    pytest.param(["submit", "strict"], 2, "missing required parameter 'name'", id="missing"),
    pytest.param(
        ["submit", "strict", "-p", "name=ok", "-p", "colour=red"],
        2,
        "unknown parameter 'colour'",
        id="unknown-param",
    ),
    pytest.param(
        ["submit", "strict", "-p", "name=ok", "-p", "count=many"],
        2,
        "parameter 'count' must be an integer",
        id="mistyped",
    ),
    pytest.param(
        ["submit", "strict", "-p", "name=ok", "-p", "count=9"],
        2,
        "parameter 'count' must be <= 5",
        id="out-of-range",
    ),
    pytest.param(
        ["submit", "strict", "-p", "name=NOT-OK"],
        2,
        "parameter 'name' does not match",
        id="pattern",
    ),
    pytest.param(
        ["submit", "strict", "-p", "name=ok", "--in", "5x"], 2, "invalid duration", id="in"
    ),
    pytest.param(
        ["submit", "strict", "-p", "name=ok", "--timeout", "abc"],
        2,
        "invalid duration 'abc'",
        id="timeout",
    ),
    pytest.param(
        ["submit", "strict", "-p", "name=ok", "--priority", "urgent"],
        2,
        "invalid priority 'urgent'",
        id="priority",
    ),
    pytest.param(
        ["submit", "strict", "-p", "name=ok", "--priority", "101"],
        2,
        "invalid priority",
        id="priority-range",
    ),
    pytest.param(["submit", "strict", "-p", "name"], 2, "-p expects KEY=VALUE", id="no-equals"),
    pytest.param(["submit", "strict", "-p", "=x"], 2, "-p expects KEY=VALUE", id="no-key"),
    pytest.param(
        ["submit", "strict", "-p", "name=a", "-p", "name=b"], 2, "given twice", id="twice"
    ),
    pytest.param(
        ["submit", "strict", "-p", "name=ok", "--after", "zzzzzz"],
        3,
        "dependency: no job matches 'zzzzzz'",
        id="unknown-dependency",
    ),
    pytest.param(
        ["submit", "strict", "-p", "name=" + "a" * 1_000_000],
        2,
        "parameter 'name' is too large",
        id="1MB-value",
    ),
    pytest.param(
        ["submit", "strict", "-p", "name=a\x00b"], 2, "contains a NUL byte", id="NUL-byte"
    ),
    pytest.param(
        ["submit", "strict", "-p", "name=ok", "--at", "next tuesday"],
        2,
        "invalid time 'next tuesday'",
        id="at",
    ),
    pytest.param(
        ["submit", "strict", "-p", "name=ok", "--at", "2030-02-30T10:00"],
        2,
        "invalid time",
        id="at-no-such-day",
    ),
    pytest.param(
        ["submit", "strict", "-p", "name=ok", "--retries", "-1"], 2, "retries", id="retries"
    ),
    pytest.param(["submit", "strict", "-p", "name=ok", "--tag", "a,b"], 2, "invalid tag", id="tag"),
    pytest.param(["jobs", "list", "--state", "done"], 2, "unknown state 'done'", id="state"),
    pytest.param(["jobs", "list", "--since", "ages"], 2, "invalid duration", id="since"),
    pytest.param(["jobs", "list", "--limit", "0"], 2, "page size", id="limit"),
    pytest.param(["jobs", "wait", "zzzzzz", "--timeout", "1s"], 3, "zzzzzz", id="wait-unknown"),
]


@pytest.mark.parametrize(("args", "code", "message"), BAD)
def test_refused_with_one_line_and_nothing_stored(cli, strict, db_path, args, code, message):
    submit(cli, strict, "-p", "name=existing")
    before = store_state(cli, db_path)
    result = cli(*args)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    line = one_error_line(result)
    assert message in line
    assert len(line) < 400  # a 1 MB value is not echoed back
    assert result.stdout == ""
    assert store_state(cli, db_path) == before


@pytest.mark.parametrize(
    "args",
    [
        ["submit"],
        ["submit", "strict", "--bogus"],
        ["submit", "strict", "--retries", "x"],
        ["jobs", "show"],
        ["jobs", "cancel", "a", "b"],
        ["no-such-command"],
        ["workers", "resize", "w1", "many"],
    ],
)
def test_usage_errors_exit_2_without_a_traceback(cli, strict, db_path, args):
    before = store_state(cli, db_path)
    result = cli(*args)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
    assert "Error:" in result.stderr
    assert store_state(cli, db_path) == before


def test_a_template_file_that_is_not_utf8_is_reported_and_the_others_load(cli, catalog, strict):
    bad = catalog / "templates" / "latin1.yaml"
    bad.write_bytes(b"name: latin1\nrunner: shell\ndescription: caf\xe9\ncommand: [echo]\n")
    result = ok(cli("templates", "list"))
    assert "strict" in result.stdout and "latin1" not in result.stdout
    [warning] = result.stderr.splitlines()
    assert f"{bad}:3: not valid UTF-8" in warning
    line = one_error_line(ok(cli("submit", "latin1"), 3))
    assert "unknown template 'latin1'" in line
    submit(cli, strict, "-p", "name=fine")


@pytest.mark.parametrize(
    "url",
    ["/proc/nope/x.db", "postgresql://localhost:1/x"],
    ids=["unwritable-path", "unreachable-server"],
)
def test_a_store_that_cannot_be_opened_exits_5(cli, url):
    result = cli("--db", url, "jobs", "list")
    assert result.exit_code == 5, (result.exit_code, result.stdout, result.stderr)
    one_error_line(result)
    assert result.stdout == ""


def test_a_store_newer_than_this_code_exits_5_and_is_left_alone(cli, echo, db_path):
    submit(cli, echo)
    with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num='9999'")
    for args in (["jobs", "list"], ["submit", echo], ["worker", "--once"]):
        result = ok(cli(*args), 5)
        assert "newer than this opsconsole" in one_error_line(result)
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("9999",)
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (1,)


@pytest.fixture
def shout(catalog):
    # `echo --help` alone prints echo's own help: a fixed first item keeps the test about us
    write_template(
        catalog,
        "shout",
        "runner: shell\ncommand: [echo, 'msg:', '{{ msg }}']\nparams:\n  msg: {type: string}\n",
    )
    return "shout"


def test_parameter_values_are_whole_argv_items_never_shell(cli, shout, catalog, tmp_path):
    target = tmp_path / "X"
    hostile = [
        "; touch X",
        f"; touch {target}",
        f"$(touch {target})",
        f"`touch {target}`",
        f"a && touch {target} || true",
        "--help",
        "-n",
        "*",
        "'quoted' \"twice\" \\back",
    ]
    jobs = {submit(cli, shout, "-p", f"msg={value}")["id"]: value for value in hostile}
    ok(cli("worker", "--once"))
    for job, value in jobs.items():
        lines = ok(cli("logs", job)).stdout.splitlines()
        assert lines[1:] == [f"msg: {value}"], (value, lines)
    for where in (target, tmp_path / "cwd" / "X", catalog / "X"):
        assert not where.exists(), where
