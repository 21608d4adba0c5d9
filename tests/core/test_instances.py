"""Instances: names are safe identifiers, checked at submit; the implied concurrency key; the
one seam for where an instance's files and state live."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import sql
from tf_support import add_module, add_template

from opsconsole.core import instances
from opsconsole.core.catalog.terraform import TerraformSpec
from opsconsole.core.errors import InvalidParams
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState

SPEC = TerraformSpec(module="terraform/x", instance="{{ name }}")


@pytest.mark.parametrize("name", ["shop", "api-2", "A_b-9", "x" * 63])
def test_safe_names_pass(name: str) -> None:
    assert instances.instance_name(SPEC, {"name": name}) == name


@pytest.mark.parametrize(
    "name", ["", "../etc", "a/b", "-x", "_x", "a b", "x" * 64, "shop\n", "***", "é"]
)
def test_unsafe_names_are_refused_in_one_line(name: str) -> None:
    with pytest.raises(InvalidParams) as err:
        instances.instance_name(SPEC, {"name": name})
    assert "is not a safe identifier" in str(err.value) and "\n" not in str(err.value)


def test_submit_sets_the_plan_phase_and_the_instance_key(
    service: OpsService, catalog: Path
) -> None:
    add_module(catalog)
    add_template(catalog)
    job = service.submit(SubmitRequest("infra", params={"name": "shop"}))
    assert job.state == JobState.QUEUED  # gated, but it plans before the approval
    with service.db.read() as conn:
        row = sql(
            conn,
            "SELECT phase, concurrency_key, concurrency_limit, gate_round FROM jobs WHERE id = ?",
            (job.id,),
        ).one()
    assert tuple(row) == ("plan", "terraform:infra:shop", 1, 0)


def test_submit_refuses_an_unsafe_instance_name_and_stores_nothing(
    service: OpsService, catalog: Path
) -> None:
    add_module(catalog)
    add_template(catalog)
    with pytest.raises(InvalidParams, match=r"instance name '\.\./up' is not a safe identifier"):
        service.submit(SubmitRequest("infra", params={"name": "../up"}))
    with service.db.read() as conn:
        assert sql(conn, "SELECT count(*) FROM jobs").scalar_one() == 0


def test_a_secret_parameter_never_names_an_instance(service: OpsService, catalog: Path) -> None:
    add_module(catalog)
    add_template(catalog, instance="{{ token }}")
    with pytest.raises(InvalidParams, match="not a safe identifier"):
        service.submit(SubmitRequest("infra", params={"name": "a", "token": "hunter2"}))


def test_the_module_must_be_inside_the_catalog(tmp_path: Path, catalog: Path) -> None:
    add_module(catalog)
    assert instances.module_source(catalog, "terraform/three").name == "three"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (catalog / "terraform" / "link").symlink_to(outside)
    for bad in ("../elsewhere", str(outside), "terraform/link"):
        with pytest.raises(InvalidParams, match="outside the catalog"):
            instances.module_source(catalog, bad)


def test_prepare_copies_the_module_and_keeps_terraforms_own_files(
    home: Path, catalog: Path
) -> None:
    add_module(catalog)
    module = instances.module_source(catalog, "terraform/three")
    ws = instances.prepare(home, "infra", "shop", module)
    assert ws == home / "instances" / "infra" / "shop"
    assert (ws.stat().st_mode & 0o777) == 0o700
    (ws / instances.STATE).write_text("{}")
    (ws / "old.tf").write_text("# gone from the catalog")
    instances.prepare(home, "infra", "shop", module)
    assert (ws / instances.STATE).exists() and not (ws / "old.tf").exists()
    assert (ws / "main.tf").read_text() == (module / "main.tf").read_text()


def test_state_summary_masks_sensitive_outputs_and_marks_tainted(tmp_path: Path) -> None:
    state = {
        "serial": 7,
        "outputs": {"url": {"value": "http://x"}, "pw": {"value": "s3", "sensitive": True}},
        "resources": [
            {"mode": "managed", "type": "terraform_data", "name": "a", "instances": [{}]},
            {
                "mode": "managed",
                "type": "terraform_data",
                "name": "b",
                "instances": [{"index_key": 0, "status": "tainted"}],
            },
            {"mode": "data", "type": "x", "name": "d", "instances": [{}]},
        ],
    }
    (tmp_path / instances.STATE).write_text(json.dumps(state))
    got = instances.summary_of_state(instances.read_state(tmp_path))
    assert got == {
        "serial": 7,
        "resources": ["terraform_data.a", "terraform_data.b[0] (tainted)"],
        "outputs": {"url": "http://x", "pw": "***"},
    }


def test_an_errored_state_is_the_instances_problem(tmp_path: Path) -> None:
    assert instances.problem(tmp_path) is None
    (tmp_path / instances.ERRORED).write_text("{}")
    problem = instances.problem(tmp_path)
    assert problem is not None and "errored.tfstate" in problem and "state push" in problem


def test_an_unreadable_state_is_a_problem_not_an_empty_instance(tmp_path: Path) -> None:
    (tmp_path / instances.STATE).write_text('{"serial": 4, "resources": [')  # cut short
    assert instances.read_state(tmp_path) is None
    problem = instances.problem(tmp_path)
    assert problem is not None and "cannot be read" in problem and instances.STATE in problem
    (tmp_path / instances.STATE).write_text("[]")
    assert "not a state document" in (instances.problem(tmp_path) or "")
    (tmp_path / instances.STATE).write_text('{"serial": 4}')
    assert instances.problem(tmp_path) is None


def test_a_shared_instance_points_terraform_at_the_store_and_a_local_one_does_not(
    home: Path, catalog: Path
) -> None:
    add_module(catalog)
    module = instances.module_source(catalog, "terraform/three")
    ws = instances.prepare(home, "infra", "shop", module, shared=True)
    assert 'backend "pg" {}' in (ws / instances.BACKEND).read_text()
    instances.prepare(home, "infra", "shop", module)  # the store became SQLite: local again
    assert not (ws / instances.BACKEND).exists()


def test_a_plan_is_here_only_in_this_instances_own_directory(home: Path, tmp_path: Path) -> None:
    ws = instances.workspace(home, "infra", "shop")
    mine = instances.plan_file(ws, "abc", 1)
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"plan")
    other = instances.plan_file(tmp_path / "elsewhere" / "infra" / "shop", "abc", 1)
    other.parent.mkdir(parents=True)
    other.write_bytes(b"plan")  # readable here, but another home's: never applied from
    assert instances.plan_is_here(ws, str(mine))
    assert not instances.plan_is_here(ws, str(other))
    assert not instances.plan_is_here(ws, str(instances.plan_file(ws, "abc", 2)))


def test_a_restored_plan_is_private(home: Path) -> None:
    ws = instances.workspace(home, "infra", "shop")
    first = instances.restored_plan(ws, b"PK plan")
    second = instances.restored_plan(ws, b"PK plan")
    assert first != second and first.parent == ws / instances.PLANS
    assert first.read_bytes() == b"PK plan"
    assert (first.stat().st_mode & 0o777) == 0o600
    assert ((ws / instances.PLANS).stat().st_mode & 0o777) == 0o700


def test_a_sealed_plan_opens_only_with_the_key_that_sealed_it() -> None:
    from cryptography.fernet import Fernet

    from opsconsole.core.secrets import SecretBox

    box = SecretBox(Fernet.generate_key())
    sealed = box.seal_bytes(b"PK\x03\x04 plan bytes")
    assert b"plan bytes" not in sealed
    assert box.open_bytes(sealed) == b"PK\x03\x04 plan bytes"
    with pytest.raises(InvalidParams, match="secret key differs"):
        SecretBox(Fernet.generate_key()).open_bytes(sealed)
