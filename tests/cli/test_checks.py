"""``checks list|show`` through the CLI: statuses of real check jobs run by ``worker --once``,
the Nagios-style exit codes of ``checks list``, JSON, refusals and name completion."""

from __future__ import annotations

import json
import subprocess

import pytest
from cli_support import Cli, as_json, installed, ok, one_error_line
from support import write_template

from opsconsole.config import Settings
from opsconsole.runtime import check_names


@pytest.fixture
def probes(catalog: object) -> None:
    """Two plugin checks (``probe-a``, ``probe-b``) that exit with their ``code`` parameter."""
    for name in ("probe-a", "probe-b"):
        write_template(
            catalog,  # type: ignore[arg-type]
            name,
            "runner: shell\ncheck: true\n"
            "command: [sh, -c, 'echo \"PROBE $0 said $0 | v=$0\"; exit \"$0\"', '{{ code }}']\n"
            "params:\n  code: {type: integer, default: 0}\n",
        )


def run(cli: Cli, template: str, code: int) -> str:
    """Submit a probe and run it to its end with ``worker --once``; its job id."""
    job = as_json(cli("submit", template, "-p", f"code={code}", "--json"))["id"]
    cli("worker", "--once")
    return str(job)


def test_checks_list_with_no_check_exits_0(cli: Cli) -> None:
    result = ok(cli("checks", "list"))
    assert result.stdout == "no check yet (a check appears when its first job ends)\n"
    assert as_json(cli("checks", "list", "--json")) == {"status": "ok", "checks": []}


def test_checks_list_exit_code_is_the_worst_status(cli: Cli, probes: None) -> None:
    job = run(cli, "probe-a", 0)
    result = ok(cli("checks", "list"))
    header, row = result.stdout.splitlines()
    columns = ["CHECK", "STATUS", "SINCE", "LAST", "RUN", "LATENCY", "RECENT", "OUTPUT"]
    assert header.split() == columns
    assert row.split()[:2] == ["probe-a", "ok"]
    assert f"({job})" in row
    assert row.endswith("PROBE 0 said 0")
    run(cli, "probe-b", 3)
    ok(cli("checks", "list"), 3)  # unknown
    run(cli, "probe-a", 1)
    ok(cli("checks", "list"), 1)  # warning outranks unknown
    run(cli, "probe-b", 2)
    result = ok(cli("checks", "list", "--json"), 2)  # critical outranks all
    doc = json.loads(result.stdout)
    assert doc["status"] == "critical"
    assert [(c["name"], c["status"], c["recent"]) for c in doc["checks"]] == [
        ("probe-a", "warning", ["ok", "warning"]),
        ("probe-b", "critical", ["unknown", "critical"]),
    ]
    run(cli, "probe-a", 0)
    run(cli, "probe-b", 0)
    ok(cli("checks", "list"))


def test_checks_show_lists_results_newest_first(cli: Cli, probes: None) -> None:
    first = run(cli, "probe-a", 0)
    second = run(cli, "probe-a", 2)
    result = ok(cli("checks", "show", "probe-a"))
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["check", "probe-a"]
    assert lines[2].split() == ["status", "CRITICAL"]
    assert "output    PROBE 2 said 2" in result.stdout
    results = lines[lines.index("results") + 2 :]
    assert [next(w for w in r.split() if w in (first, second)) for r in results] == [second, first]
    assert [r.split()[2] for r in results] == ["CRITICAL", "ok"]
    doc = as_json(cli("checks", "show", "probe-a", "-n", "1", "--json"))
    assert (doc["status"], [r["job"] for r in doc["results"]]) == ("critical", [second])


def test_checks_show_of_an_unknown_check_is_one_line_and_exit_3(cli: Cli) -> None:
    result = ok(cli("checks", "show", "nope"), 3)
    assert one_error_line(result) == (
        "opsconsole: error: no check 'nope' (a check appears when its first job ends)"
    )


def test_check_names_complete_from_the_store(cli: Cli, probes: None, settings: Settings) -> None:
    run(cli, "probe-a", 0)
    run(cli, "probe-b", 2)
    assert check_names(settings, "probe-") == [("probe-a", "ok"), ("probe-b", "critical")]
    assert check_names(settings, "probe-b") == [("probe-b", "critical")]


def test_the_installed_command_exits_with_the_worst_status(
    cli: Cli, probes: None, settings: Settings
) -> None:
    run(cli, "probe-a", 1)
    done = subprocess.run(
        installed(settings, "checks", "list"), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert "probe-a" in done.stdout and "WARNING" in done.stdout
