"""``templates list|show`` through the CLI, on a test catalog and on the sample one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import as_json, ok, one_error_line, submit
from support import wait_until, write_template

SAMPLE_CATALOG = Path(__file__).resolve().parents[2] / "data"
SAMPLES = [
    "api_service",
    "command-check",
    "deploy-app",
    "disk-check",
    "disk-report",
    "hello",
    "http-check",
    "load-check",
    "process-check",
    "restart-service",
    "rotate-logs",
    "rotate-logs-ansible",
    "site-ping",
    "sync-inventory",
    "tcp-check",
    "uptime",
    "usage-limits",
    "web_app",
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


def _duplicate_hello(catalog: Path) -> tuple[Path, Path]:
    """The real ``hello`` and a stray copy that declares the same name (sorted first)."""
    real = write_template(catalog, "hello", "runner: shell\ncommand: [echo, real]\n")
    stray = catalog / "templates" / "dup.yaml"
    stray.write_text("name: hello\nrunner: shell\ncommand: [echo, stray]\n")
    return real, stray


def _says_both(text: str, real: Path, stray: Path) -> None:
    assert f"template 'hello' is declared by both {stray} and {real}, so neither is loaded" in text
    assert "rename one of them" in text


def test_a_name_declared_twice_is_refused_in_templates_list(cli, catalog, echo):
    real, stray = _duplicate_hello(catalog)
    result = ok(cli("templates", "list"))
    assert [r.split()[0] for r in result.stdout.splitlines()[1:]] == ["echo"]
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2
    assert warnings[0].startswith(f"opsconsole: warning: skipped template: {stray}:1: ")
    assert f"also declared by {real}" in warnings[0]
    assert warnings[1].startswith(f"opsconsole: warning: skipped template: {real}:1: ")
    assert f"also declared by {stray}" in warnings[1]
    listing = as_json(cli("templates", "list", "--json"))
    assert [t["name"] for t in listing["templates"]] == ["echo"]
    assert [p.split(":")[0] for p in listing["problems"]] == [str(stray), str(real)]


def test_a_name_declared_twice_is_refused_by_show_and_submit(cli, catalog, echo):
    real, stray = _duplicate_hello(catalog)
    _says_both(one_error_line(ok(cli("templates", "show", "hello"), 3)), real, stray)
    _says_both(one_error_line(ok(cli("submit", "hello"), 3)), real, stray)
    assert as_json(cli("jobs", "list", "--json"))["jobs"] == []
    stray.unlink()  # the operator removes the stray file: the real one is back
    assert "runs: echo real" in ok(cli("templates", "show", "hello")).stdout


def test_a_worker_fails_jobs_of_a_name_declared_twice_and_says_so_at_start(
    cli, catalog, echo, caplog
):
    write_template(catalog, "hello", "runner: shell\ncommand: [echo]\n")
    queued = submit(cli, "hello")
    stray = catalog / "templates" / "dup.yaml"
    stray.write_text("name: hello\nrunner: shell\ncommand: [echo, stray]\n")
    real = catalog / "templates" / "hello.yaml"
    ok(cli("worker", "--once"), 1)
    job = as_json(cli("jobs", "show", queued["id"], "--json"))
    assert job["state"] == "failed"
    _says_both(job["error"]["message"], real, stray)
    started = [r.getMessage() for r in caplog.records if r.name == "opsconsole.worker"]
    assert f"catalog: {stray}:1: template name 'hello' is also declared by {real}" in "\n".join(
        started
    )


def test_a_running_worker_sees_a_stray_file_come_and_go(cli, catalog, tmp_path, start_pool):
    """The worker reads the catalog again when its files change: no restart needed."""
    one_at_a_time = "concurrency: {key: one, limit: 1}\n"
    write_template(
        catalog,
        "gate",
        "runner: shell\ncommand: [sh, -c, 'while [ ! -e \"$0\" ]; do sleep 0.05; done', "
        "'{{ path }}']\nparams:\n  path: {type: string}\n" + one_at_a_time,
    )
    real = write_template(catalog, "hello", "runner: shell\ncommand: [echo]\n" + one_at_a_time)
    opened = tmp_path / "open"
    start_pool()

    def state(job_id: str) -> str:
        return as_json(cli("jobs", "show", job_id, "--json"))["state"]

    gate = submit(cli, "gate", "-p", f"path={opened}")["id"]
    wait_until(lambda: state(gate) == "running", timeout=30)
    waiting = submit(cli, "hello")["id"]  # queued behind the gate's lock
    stray = catalog / "templates" / "dup.yaml"
    stray.write_text("name: hello\nrunner: shell\ncommand: [echo, stray]\n")
    opened.touch()
    wait_until(lambda: state(waiting) in ("succeeded", "failed"), timeout=30)
    job = as_json(cli("jobs", "show", waiting, "--json"))
    assert job["state"] == "failed"
    _says_both(job["error"]["message"], real, stray)
    stray.unlink()
    again = submit(cli, "hello")["id"]
    assert wait_until(lambda: state(again) in ("succeeded", "failed"), timeout=30) is True
    assert state(again) == "succeeded"


def test_a_missing_catalog_says_how_to_fix_it_and_exits_3(cli, tmp_path):
    nowhere = tmp_path / "nowhere"
    line = one_error_line(ok(cli("--catalog", str(nowhere), "templates", "list"), 3))
    assert line == (
        f"opsconsole: error: catalog directory {nowhere} does not exist: create it with "
        "templates/ inside, or set OPSCONSOLE_CATALOG / --catalog to the catalog you mean"
    )
    result = ok(cli("--catalog", str(nowhere), "templates", "list", "--json"), 3)
    listing = json.loads(result.stdout)
    assert listing["templates"] == []
    assert listing["error"] == line.removeprefix("opsconsole: error: ")
    assert listing["problems"] == [f"{nowhere}: {listing['error']}"]


def test_a_flat_catalog_says_to_move_the_files_into_templates(cli, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("alpha", "bravo", "charlie"):
        (flat / f"{name}.yaml").write_text(f"name: {name}\nrunner: shell\ncommand: [echo]\n")
    line = one_error_line(ok(cli("--catalog", str(flat), "templates", "list"), 3))
    assert line == (
        f"opsconsole: error: found 3 template file(s) in {flat} but none in "
        f"{flat / 'templates'}/: move the files into {flat / 'templates'}/"
    )
    shown = one_error_line(ok(cli("--catalog", str(flat), "templates", "show", "alpha"), 3))
    assert shown == f"opsconsole: error: template 'alpha' not found: {line[19:]}"


def test_an_empty_catalog_is_not_an_error_but_says_where_templates_go(cli, catalog):
    result = ok(cli("templates", "list"))
    assert result.stdout.split() == ["NAME", "RUNNER", "PARAMS", "DESCRIPTION"]
    assert result.stderr == (
        "opsconsole: the catalog has no templates yet: add a template file (NAME.yaml) to "
        f"{catalog / 'templates'}/\n"
    )
    assert as_json(cli("templates", "list", "--json")) == {"templates": [], "problems": []}


@pytest.mark.parametrize(
    ("name", "runs"),
    [
        ("site-ping", "runs: playbook ansible/site-ping.yml"),
        ("uptime", "runs: module ansible.builtin.command uptime"),
        ("web_app", "runs: module terraform/web_app on instance {{ app_name }}"),
    ],
)
def test_templates_show_says_what_an_ansible_or_terraform_template_runs(cli, name, runs):
    out = ok(cli("--catalog", str(SAMPLE_CATALOG), "templates", "show", name)).stdout
    assert runs in out
    assert "None" not in out
