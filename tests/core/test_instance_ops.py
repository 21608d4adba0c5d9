"""Terraform instances in the service: list, show, name resolution and the gated destroy.

The Terraform runner writes instance rows and plans; here they are seeded with the same
store functions it uses (``instance_support``), so no Terraform is needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from instance_support import DESTROY_PLAN, HASH, applied, planned, terraform_catalog
from support import sql

from opsconsole.core.approval_detail import job_plan
from opsconsole.core.catalog.terraform import is_destroy
from opsconsole.core.clock import SettableClock
from opsconsole.core.errors import Forbidden, InvalidParams, InvalidTransition, NotFound
from opsconsole.core.identity import current
from opsconsole.core.instance_ops import DESTROY_TAG
from opsconsole.core.secrets import MASK
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import instances as instance_store
from opsconsole.core.store import queries
from opsconsole.core.store.db import Database

S = JobState


@pytest.fixture
def fleet(clocked: OpsService, catalog: Path) -> dict[str, str]:
    """web_app/shop and web_app/blog (applied), api_service/shop (applied), each with the
    job that applied it; returns instance ref -> job id."""
    terraform_catalog(catalog)
    clocked.reload_catalog()
    jobs = {}
    for template, params in (
        ("web_app", {"app_name": "shop", "size": "2", "token": "t0k3n"}),
        ("web_app", {"app_name": "blog", "token": "t0k3n"}),
        ("api_service", {"name": "shop"}),
    ):
        job = clocked.submit(SubmitRequest(template, params=params)).id
        name = params.get("app_name") or params["name"]
        applied(clocked, job, template, name)
        jobs[f"{template}/{name}"] = job
    return jobs


def test_instances_lists_every_instance_with_its_last_job_state(
    clocked: OpsService, fleet: dict[str, str]
) -> None:
    views = clocked.instances()
    assert [v.ref for v in views] == ["api_service/shop", "web_app/blog", "web_app/shop"]
    shop = views[2]
    assert (shop.status, shop.last_job, shop.serial, shop.plan_hash) == (
        "applied",
        fleet["web_app/shop"],
        3,
        HASH,
    )
    assert shop.last_job_state == clocked.get(fleet["web_app/shop"]).state.value
    assert [v.name for v in clocked.instances("web_app")] == ["blog", "shop"]
    assert clocked.instances("nothing") == []


def test_an_output_still_marked_sensitive_is_masked(clocked: OpsService, fleet: dict) -> None:
    applied(
        clocked,
        fleet["web_app/blog"],
        "web_app",
        "blog",
        outputs={"url": "http://blog", "pw": {"value": "hunter2", "sensitive": True}},
    )
    blog = clocked.instance("blog")
    assert blog.outputs == {"url": "http://blog", "pw": MASK}
    assert "hunter2" not in str(blog.to_dict())


def test_a_unique_name_resolves_alone_a_shared_one_needs_its_template(
    clocked: OpsService, fleet: dict[str, str]
) -> None:
    assert clocked.instance("blog").ref == "web_app/blog"
    assert clocked.instance("api_service/shop").ref == "api_service/shop"
    with pytest.raises(InvalidParams) as err:
        clocked.instance("shop")
    assert str(err.value) == (
        "instance name 'shop' is used by several templates (api_service/shop, web_app/shop): "
        "give TEMPLATE/NAME"
    )


@pytest.mark.parametrize("ref", ["nope", "web_app/nope", "nope/shop"])
def test_an_unknown_instance_lists_the_choices(
    clocked: OpsService, fleet: dict[str, str], ref: str
) -> None:
    with pytest.raises(NotFound) as err:
        clocked.instance(ref)
    assert str(err.value).endswith("(instances: api_service/shop, web_app/blog, web_app/shop)"), (
        str(err.value)
    )


def test_show_has_the_job_history_of_that_instance_only(
    clocked: OpsService, clock: SettableClock, fleet: dict[str, str]
) -> None:
    clock.advance(60)
    again = clocked.submit(SubmitRequest("web_app", params={"app_name": "shop", "token": "x"})).id
    shop = clocked.instance("web_app/shop")
    assert [j.id for j in shop.history or ()] == [again, fleet["web_app/shop"]]
    assert shop.resources == ("terraform_data.web", "terraform_data.dns")
    blog = clocked.instance("blog")
    assert [j.id for j in blog.history or ()] == [fleet["web_app/blog"]]


def test_show_carries_the_last_jobs_plan(clocked: OpsService, fleet: dict[str, str]) -> None:
    job = fleet["web_app/blog"]
    planned(clocked, job, "web_app", "blog")
    plan = clocked.instance("blog").plan
    assert plan is not None and (plan.job_id, plan.counts) == (job, "+2 ~1 -1 ±1")


# -- the destroy ------------------------------------------------------------------------


def test_destroy_is_a_gated_job_of_the_template_with_the_destroy_flag(
    clocked: OpsService, fleet: dict[str, str]
) -> None:
    job = clocked.destroy_instance("blog", params={"token": "t0k3n"}, reason="retired")
    row, _ = queries.get(clocked.db, job.id)
    assert row["template"] == "web_app"
    assert row["spec"]["terraform"]["destroy"] is True
    assert is_destroy(row["spec"])
    # web_app asks for no approval: its destroy gets one approver anyway
    assert row["spec"]["approval"] == {"required": 1}
    assert row["params"] == {"app_name": "blog", "size": 1, "token": MASK}
    assert DESTROY_TAG in job.tags
    assert clocked.box.open(row["secret_blob"]) == {"token": "t0k3n"}
    trail = clocked.get(job.id, with_events=True).events or ()
    assert any(
        e.kind == "destroy_requested" and e.message == "destroy of instance web_app/blog: retired"
        for e in trail
    )


def test_destroy_keeps_the_templates_own_approval_policy(
    clocked: OpsService, fleet: dict[str, str]
) -> None:
    job = clocked.destroy_instance("api_service/shop")
    row, _ = queries.get(clocked.db, job.id)
    assert row["spec"]["approval"] == {"required": 2, "expires": "4h"}
    assert row["params"] == {"name": "shop", "lb": False}


def test_the_digest_binds_the_destroy_flag(clocked: OpsService, fleet: dict[str, str]) -> None:
    job = clocked.destroy_instance("blog", params={"token": "t0k3n"}).id
    row, _ = queries.get(clocked.db, job)
    as_apply = dict(row)
    as_apply["spec"] = {**row["spec"], "terraform": {**row["spec"]["terraform"], "destroy": False}}
    assert clocked.digest_of(row) != clocked.digest_of(as_apply)


def test_approving_a_destroy_approves_the_destroy(
    clocked: OpsService, fleet: dict[str, str]
) -> None:
    """The destroy's snapshot differs from the catalog's template by design: an approval
    must not read that as a template change and start a round that applies instead."""
    view, public, needed = clocked.destroy_params("blog")
    assert view.ref == "web_app/blog" and public == {"app_name": "blog", "size": 1}
    assert needed == ["token"]
    job = submitted_by_destroy(clocked, "blog", {"token": "t0k3n"}, who="alice")
    planned(clocked, job, "web_app", "blog", DESTROY_PLAN)
    before = clocked.approval_detail(job)
    assert before.destroy and before.plan is not None and before.plan.destroy == 2
    out = clocked.approve(job, comment="blog retired")
    row, _ = queries.get(clocked.db, job)
    assert row["spec"]["terraform"]["destroy"] is True
    assert out.state != S.AWAITING_APPROVAL
    assert row["approved_digest"] == before.digest
    assert clocked.gate_refusal(row) is None


def submitted_by_destroy(service: OpsService, ref: str, params: dict, who: str) -> str:
    job = service.destroy_instance(ref, params=params).id
    with service.db.write() as conn:
        sql(conn, "UPDATE jobs SET submitted_by = ? WHERE id = ?", (who, job))
    return job


def test_destroy_needs_the_secret_parameters_again(
    clocked: OpsService, fleet: dict[str, str]
) -> None:
    with pytest.raises(InvalidParams) as err:
        clocked.destroy_instance("blog")
    assert str(err.value) == (
        "destroying web_app/blog needs its secret parameters again (they are dropped when a "
        "job ends): -p token=@FILE"
    )
    with pytest.raises(InvalidParams, match="only secret parameters can be given to a destroy"):
        clocked.destroy_instance("blog", params={"token": "x", "app_name": "other"})
    assert not [j for j in clocked.instance("blog").history or () if DESTROY_TAG in j.tags]


def test_a_second_destroy_while_one_is_live_is_refused(
    clocked: OpsService, fleet: dict[str, str]
) -> None:
    first = clocked.destroy_instance("api_service/shop").id
    with pytest.raises(InvalidTransition) as err:
        clocked.destroy_instance("api_service/shop")
    assert str(err.value).startswith(
        f"a destroy of api_service/shop is already under way: job {first} is "
    )


def test_a_destroyed_instance_is_not_destroyed_again(
    clocked: OpsService, fleet: dict[str, str]
) -> None:
    instance_store.upsert(clocked.db, "web_app", "blog", clocked.now(), status="destroyed")
    with pytest.raises(InvalidTransition, match=r"^instance web_app/blog is already destroyed"):
        clocked.destroy_instance("blog", params={"token": "x"})


def test_an_ambiguous_or_unknown_destroy_submits_nothing(
    clocked: OpsService, fleet: dict[str, str]
) -> None:
    before = clocked.counts()
    with pytest.raises(InvalidParams, match="give TEMPLATE/NAME"):
        clocked.destroy_instance("shop")
    with pytest.raises(NotFound):
        clocked.destroy_instance("gone")
    assert clocked.counts() == before


def test_destroy_needs_the_submit_right_on_the_template(
    settings, catalog: Path, home: Path, clocked: OpsService, fleet: dict[str, str]
) -> None:
    me = current()
    (home / "opsconsole.toml").write_text(f'[roles]\nviewer = ["user:{me.name}"]\n')
    (home / "opsconsole.toml").chmod(0o644)
    from opsconsole.config import load_settings

    s = load_settings(home=home, catalog=catalog, db=settings.db)
    viewer = OpsService(s, Database(s.db))
    try:
        with pytest.raises(Forbidden, match="may not submit jobs: needs the operator role"):
            viewer.destroy_instance("api_service/shop")
        assert viewer.instances()  # reading needs no role beyond viewer
    finally:
        viewer.db.dispose()
    assert not [
        j for j in clocked.instance("api_service/shop").history or () if DESTROY_TAG in j.tags
    ]


def test_a_malformed_plan_summary_reads_as_malformed_not_empty(
    clocked: OpsService, fleet: dict[str, str]
) -> None:
    job = fleet["web_app/blog"]
    planned(clocked, job, "web_app", "blog", {"add": "two", "resources": [{"address": 3}]})
    plan = job_plan(clocked.db, job)
    assert plan is not None and plan.malformed and plan.add == 0


def test_a_retried_terraform_job_plans_again_before_anyone_approves(
    clocked: OpsService, fleet: dict[str, str]
) -> None:

    from opsconsole.core.store.db import jobs

    job = fleet["api_service/shop"]  # gated: two approvers
    with clocked.db.write() as conn:  # its apply failed
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == job)
            .values(state="failed", phase="apply", finished_at=clocked.now(), attempts=2)
        )
    retried = clocked.retry(job)
    # not awaiting an approval with nothing to show: queued to plan, then parked with it
    assert retried.state == S.QUEUED
    row, _ = queries.get(clocked.db, job)
    assert row["phase"] == "plan"


def test_a_rejected_plan_is_discarded_never_left_pending(
    clocked: OpsService, catalog: Path
) -> None:
    from support import submitted_by

    terraform_catalog(catalog)
    job = submitted_by(clocked, SubmitRequest("api_service", params={"name": "new"}), "alice")
    planned(clocked, job, "api_service", "new")
    assert job_plan(clocked.db, job).status == "pending"
    clocked.reject(job, reason="not this quarter")
    assert job_plan(clocked.db, job).status == "discarded"
