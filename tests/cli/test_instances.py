"""``instances list|show|destroy``, the plan in ``approvals list`` and ``jobs show``, and the
completion of instance names. Instance rows and plans are seeded as the Terraform runner
writes them (``instance_support``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cli_support import Cli, as_json, ok, one_error_line
from instance_support import HASH, applied, planned, terraform_catalog
from support import submitted_by

from opsconsole.config import Settings
from opsconsole.core.secrets import MASK
from opsconsole.core.service import OpsService, SubmitRequest

from .test_completion import bash, shell_env, zsh


@pytest.fixture
def fleet(service: OpsService, catalog: Path) -> dict[str, str]:
    """web_app/shop, web_app/blog and api_service/shop, applied; ref -> the job that did."""
    terraform_catalog(catalog)
    made = {}
    for template, params in (
        ("web_app", {"app_name": "shop", "token": "t0k3n"}),
        ("web_app", {"app_name": "blog", "token": "t0k3n"}),
        ("api_service", {"name": "shop"}),
    ):
        job = service.submit(SubmitRequest(template, params=params)).id
        name = params.get("app_name") or params["name"]
        applied(
            service,
            job,
            template,
            name,
            outputs={"url": f"http://{name}.local", "pw": {"value": "hunter2", "sensitive": True}},
        )
        made[f"{template}/{name}"] = job
    return made


def test_list_plain_and_json(cli: Cli, fleet: dict[str, str]) -> None:
    out = ok(cli("instances", "list")).stdout
    lines = out.splitlines()
    assert lines[0].split() == [
        "TEMPLATE", "INSTANCE", "STATUS", "LAST", "JOB", "SERIAL", "PLAN", "OUTPUTS", "PROBLEM"
    ]  # fmt: skip
    assert lines[1].split()[:3] == ["api_service", "shop", "applied"]
    assert HASH[:12] in out and "url=http://blog.local" in out and "pw=***" in out
    assert "hunter2" not in out
    listed = as_json(cli("instances", "list", "--json"))
    assert [(i["template"], i["instance"]) for i in listed] == [
        ("api_service", "shop"),
        ("web_app", "blog"),
        ("web_app", "shop"),
    ]
    blog = listed[1]
    assert blog["last_job"] == fleet["web_app/blog"] and blog["last_job_state"] == "queued"
    assert (blog["serial"], blog["plan_hash"]) == (3, HASH)
    assert blog["outputs"] == {"url": "http://blog.local", "pw": MASK}
    only = as_json(cli("instances", "list", "--template", "api_service", "--json"))
    assert [i["instance"] for i in only] == ["shop"]


def test_list_with_no_instances(cli: Cli, catalog: Path) -> None:
    assert ok(cli("instances", "list")).stdout.strip() == "no instance yet"
    assert as_json(cli("instances", "list", "--json")) == []


def test_show_plain_and_json(cli: Cli, service: OpsService, fleet: dict[str, str]) -> None:
    job = fleet["web_app/blog"]
    planned(service, job, "web_app", "blog")
    out = ok(cli("instances", "show", "blog")).stdout
    assert "web_app/blog" in out and "terraform_data.dns" in out
    lines = out.splitlines()
    assert all(line == line.rstrip() for line in lines)  # piped rows carry no padding
    at = next(i for i, line in enumerate(lines) if line.startswith("resources"))
    assert lines[at].split() == ["resources", "terraform_data.web"]  # one address per row
    assert lines[at + 1].split() == ["terraform_data.dns"]
    assert "last plan (job " in out and "+2 ~1 -1 ±1" in out
    assert f"{job}" in out and "hunter2" not in out
    data = as_json(cli("instances", "show", "web_app/blog", "--json"))
    assert data["resources"] == ["terraform_data.web", "terraform_data.dns"]
    assert [h["id"] for h in data["history"]] == [job]
    assert data["plan"]["counts"] == "+2 ~1 -1 ±1"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("show", "shop"), 2, "instance name 'shop' is used by several templates"),
        (("show", "nope"), 3, "no instance 'nope' (instances: api_service/shop, web_app/blog,"),
        (("destroy", "shop", "--yes"), 2, "give TEMPLATE/NAME"),
        (("destroy", "web_app/nope", "--yes"), 3, "no instance 'nope' of template 'web_app'"),
        (("destroy", "blog", "--yes"), 2, "needs its secret parameters again"),
        (("destroy", "api_service/shop", "-p", "name=x", "--yes"), 2, "only secret parameters"),
        (("destroy", "api_service/shop"), 2, "needs a typed confirmation"),
    ],
)
def test_bad_names_and_refusals_are_one_line(
    cli: Cli, fleet: dict[str, str], args: tuple[str, ...], code: int, message: str
) -> None:
    result = ok(cli("instances", *args), code)
    assert message in one_error_line(result)


def test_destroy_prints_the_job_and_what_it_waits_for(
    cli: Cli, service: OpsService, fleet: dict[str, str]
) -> None:
    out = ok(cli("instances", "destroy", "api_service/shop", "--yes", "--reason", "retired"))
    job = out.stdout.split()[0]
    assert "destroy of api_service/shop requested as job" in out.stdout
    assert "awaits an approval of that plan" in out.stdout
    view = service.get(job)
    assert view.template == "api_service" and "destroy" in view.tags
    again = ok(cli("instances", "destroy", "api_service/shop", "--yes"), 2)
    assert f"already under way: job {job}" in one_error_line(again)


def test_destroy_json_with_a_secret_from_stdin(
    cli: Cli, service: OpsService, fleet: dict[str, str]
) -> None:
    result = cli("instances", "destroy", "blog", "-p", "token=@-", "--yes", "--json", input="s3\n")
    data = as_json(result)
    assert data["instance"] == "web_app/blog" and data["params"]["token"] == MASK
    assert "s3" not in result.stdout.replace(data["id"], "")


def test_approvals_list_shows_the_plan_counts(
    cli: Cli, service: OpsService, fleet: dict[str, str]
) -> None:
    job = submitted_by(service, SubmitRequest("api_service", params={"name": "new"}), "alice")
    planned(service, job, "api_service", "new")
    out = ok(cli("approvals", "list")).stdout
    row = next(line for line in out.splitlines() if line.startswith(job))
    assert row.rstrip().endswith("+2 ~1 -1 ±1")
    listed = as_json(cli("approvals", "list", "--json"))
    assert next(r for r in listed if r["id"] == job)["plan"]["destroy"] == 1


def test_jobs_show_has_the_plan_section(
    cli: Cli, service: OpsService, fleet: dict[str, str]
) -> None:
    job = fleet["api_service/shop"]
    planned(service, job, "api_service", "shop")
    out = ok(cli("jobs", "show", job)).stdout
    assert f"plan: +2 ~1 -1 ±1  sha256 {HASH[:12]}  pending" in out
    assert "-/+ terraform_data.lb  (replace)" in out
    assert "this plan destroys 2 resource(s)" in out
    assert "terraform_data.keep" not in out  # a no-op is not a change
    assert as_json(cli("jobs", "show", job, "--json"))["plan"]["hash"] == HASH
    plain = fleet["web_app/shop"]
    assert "plan" not in as_json(cli("jobs", "show", plain, "--json"))


def test_instance_names_complete(settings: Settings, tmp_path: Path, fleet: dict[str, str]) -> None:
    env = shell_env(settings, tmp_path)
    assert bash(env, "opsconsole instances show ") == [
        "blog",
        "api_service/shop",
        "web_app/shop",
    ]
    assert zsh(env, "opsconsole instances destroy bl") == [("blog", "applied web_app")]
    assert bash(env, "opsconsole instances show web_app/") == ["web_app/blog", "web_app/shop"]


def test_the_installed_command_lists_instances(settings: Settings, fleet: dict[str, str]) -> None:
    from cli_support import installed

    result = subprocess.run(
        installed(settings, "instances", "list", "--json"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"instance":"blog"' in result.stdout.replace(" ", "")


@pytest.mark.parametrize(("typed", "code"), [(b"shop", 0), (b"shp", 2)])
def test_destroy_on_a_terminal_asks_for_the_instance_name(
    settings: Settings, service: OpsService, fleet: dict[str, str], typed: bytes, code: int
) -> None:
    """The installed command on a real pseudo-terminal: the typed name submits, another
    word submits nothing."""
    import os

    from cli_support import installed, on_a_terminal

    argv = installed(settings, "instances", "destroy", "api_service/shop")
    seen, exit_code, answered = on_a_terminal(
        argv, b'type "shop" to confirm', lambda fd: os.write(fd, typed + b"\n"), timeout=30
    )
    assert answered and exit_code == code, seen
    history = service.instance("api_service/shop").history or ()
    destroys = [j for j in history if "destroy" in j.tags]
    assert len(destroys) == (1 if code == 0 else 0), seen
    if code:
        assert b'the confirmation does not match "shop"; nothing submitted' in seen
