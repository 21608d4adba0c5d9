"""``templates list|show`` through the CLI, on a test catalog and on the sample one."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import as_json, ok, one_error_line
from support import write_template

SAMPLE_CATALOG = Path(__file__).resolve().parents[2] / "data"
SAMPLES = [
    "deploy-app",
    "disk-report",
    "hello",
    "http-check",
    "rotate-logs",
    "sync-inventory",
]


def test_templates_list(cli, echo, secret):
    result = ok(cli("templates", "list"))
    rows = result.stdout.splitlines()
    assert rows[0].split() == ["NAME", "RUNNER", "PARAMS", "DESCRIPTION"]
    assert [r.split()[:3] for r in rows[1:]] == [
        ["echo", "shell", "msg"],
        ["secretive", "shell", "token*"],
    ]
    assert result.stderr == ""


def test_templates_list_json(cli, echo):
    listing = as_json(cli("templates", "list", "--json"))
    assert listing["problems"] == []
    [tpl] = listing["templates"]
    assert (tpl["name"], tpl["runner"], tpl["command"]) == ("echo", "shell", ["echo", "{{ msg }}"])
    assert tpl["params"][0]["name"] == "msg"
    assert tpl["params"][0]["default"] == "hi"


def test_templates_show(cli, secret):
    out = ok(cli("templates", "show", secret)).stdout
    assert out.splitlines()[0] == "secretive"
    assert "runner: shell" in out
    [row] = [line for line in out.splitlines() if line.startswith("token")]
    assert "(secret)" in row and "yes" in row


def test_templates_show_json(cli, catalog):
    write_template(
        catalog,
        "keyed",
        "runner: shell\ncommand: [echo, '{{ token }}']\n"
        "params:\n  token: {type: string, secret: true, default: hunter2}\n"
        "concurrency: {key: only-one}\npriority: high\n",
    )
    result = ok(cli("templates", "show", "keyed", "--json"))
    tpl = json.loads(result.stdout)
    assert tpl["name"] == "keyed"
    assert (tpl["priority"], tpl["priority_name"]) == (10, "high")
    assert tpl["concurrency_key"] == "only-one"
    assert tpl["params"][0]["default"] == "***"
    assert "hunter2" not in result.stdout  # a secret default stays hidden


def test_templates_show_unknown(cli, echo):
    line = one_error_line(ok(cli("templates", "show", "nope"), 3))
    assert "unknown template 'nope'" in line and "echo" in line


def test_a_broken_template_is_a_warning_and_the_others_still_list(cli, catalog, echo):
    broken = write_template(catalog, "broken", "runner: shell\ncommand: [echo\n")
    result = ok(cli("templates", "list"))
    assert "echo" in result.stdout and "broken" not in result.stdout
    [warning] = result.stderr.splitlines()
    assert warning.startswith(f"opsconsole: warning: skipped template: {broken}:")
    line = warning.removeprefix(f"opsconsole: warning: skipped template: {broken}:")
    assert line.split(":")[0].isdigit()  # the line number
    assert "invalid YAML" in warning
    listing = as_json(cli("templates", "list", "--json"))
    assert [t["name"] for t in listing["templates"]] == ["echo"]
    [problem] = listing["problems"]
    assert problem.startswith(f"{broken}:")
    ok(cli("submit", echo))


def test_a_schema_error_names_its_line(cli, catalog, echo):
    bad = write_template(catalog, "bad", "runner: shell\ncommand: [echo]\nretries: lots\n")
    [warning] = ok(cli("templates", "list")).stderr.splitlines()
    assert f"{bad}:4:" in warning  # line 1 is the name


def test_the_sample_catalog_loads_cleanly(cli):
    sample = str(SAMPLE_CATALOG)
    listing = as_json(cli("--catalog", sample, "templates", "list", "--json"))
    assert listing["problems"] == []
    assert [t["name"] for t in listing["templates"]] == SAMPLES
    deploy = as_json(cli("--catalog", sample, "templates", "show", "deploy-app", "--json"))
    assert {p["name"]: p["secret"] for p in deploy["params"]}["token"] is True
