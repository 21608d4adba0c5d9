"""Terraform instances as operators see them: list, show, and the gated destroy.

A mixin of ``OpsService`` and the only place an instance reference (``NAME`` or
``TEMPLATE/NAME``) is resolved and a destroy job is made. A destroy is an ordinary job of
the instance's template whose snapshot says ``terraform.destroy: true`` and always carries
an approval policy, so the approval digest (which covers the snapshot) binds the destroy
flag and nothing destroys an instance without an approver seeing the plan. Read-only apart
from the destroy's submit; it never touches Terraform or the instance's state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsconsole.core.approval_detail import PlanView, job_plan
from opsconsole.core.catalog import Template, render, template_from_dict
from opsconsole.core.catalog.terraform import destroy_spec
from opsconsole.core.errors import (
    InvalidParams,
    InvalidTransition,
    NotFound,
    OpsError,
)
from opsconsole.core.host import ServiceHost
from opsconsole.core.secrets import MASK
from opsconsole.core.states import LIVE
from opsconsole.core.store import instances as instance_store
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store import queries
from opsconsole.core.views import JobView, iso

if TYPE_CHECKING:
    from opsconsole.core.service import SubmitRequest

DESTROY_TAG = "destroy"
"""Every destroy job carries it, so ``jobs list --tag destroy`` finds them."""
"""The approval a destroy gets when its template asks for none: one approver, not the
submitter."""
HISTORY_LIMIT = 50
"""Jobs shown in an instance's history, newest first."""
HISTORY_SCAN = 2000
"""At most this many of the template's newest jobs are read to find an instance's history."""
HISTORY_PAGE = 200
CHOICES_SHOWN = 10
"""Instances named in a 'no such instance' error: enough to spot a typo."""


@dataclass(frozen=True)
class InstanceView:
    """One Terraform instance: what its last run left, and the jobs that worked on it."""

    template: str
    name: str
    status: str
    """new | applying | applied | destroying | destroyed | errored"""
    last_job: str | None
    last_job_state: str | None
    serial: int | None
    plan_hash: str | None
    """The sha256 of the last plan applied to it."""
    outputs: dict[str, Any]
    """Output values; sensitive ones are masked by the runner before they are stored."""
    resources: tuple[str, ...]
    problem: str | None
    created_at: datetime
    updated_at: datetime
    history: tuple[JobView, ...] | None = None
    """Jobs of its template planned for this instance, newest first (``show`` only)."""
    plan: PlanView | None = None
    """The newest plan of its last job (``show`` only)."""

    @property
    def ref(self) -> str:
        return f"{self.template}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "template": self.template,
            "instance": self.name,
            "status": self.status,
            "last_job": self.last_job,
            "last_job_state": self.last_job_state,
            "serial": self.serial,
            "plan_hash": self.plan_hash,
            "outputs": self.outputs,
            "resources": list(self.resources),
            "problem": self.problem,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
        if self.history is not None:
            out["history"] = [
                {
                    "id": j.id,
                    "state": j.state.value,
                    "destroy": DESTROY_TAG in j.tags,
                    "submitted_by": j.submitted_by,
                    "created_at": iso(j.created_at),
                    "finished_at": iso(j.finished_at),
                }
                for j in self.history
            ]
            out["plan"] = self.plan.to_dict() if self.plan is not None else None
        return out


def masked_outputs(outputs: Any) -> dict[str, Any]:
    """Output values to show: a value still marked sensitive is masked here too, so a row
    written carelessly never puts a secret on a screen."""
    if not isinstance(outputs, dict):
        return {}
    shown: dict[str, Any] = {}
    for key, value in outputs.items():
        if isinstance(value, dict) and "value" in value:
            value = MASK if value.get("sensitive") else value["value"]
        shown[str(key)] = value
    return shown


def instance_of(spec: Any, params: Mapping[str, Any]) -> str | None:
    """The instance a job of snapshot ``spec`` works on, or None (not Terraform, or its
    pattern cannot be rendered from the stored parameters)."""
    block = spec.get("terraform") if isinstance(spec, dict) else None
    pattern = block.get("instance") if isinstance(block, dict) else None
    if not isinstance(pattern, str):
        return None
    try:
        return render(pattern, params)
    except OpsError:
        return None


class InstanceOpsMixin(ServiceHost):
    if TYPE_CHECKING:

        def submit(self, req: SubmitRequest, *, template: Template | None = None) -> JobView: ...

    # -- reading ------------------------------------------------------------------

    def instances(self, template: str | None = None) -> list[InstanceView]:
        """Every Terraform instance (of ``template``), by template then name."""
        rows = instance_store.list_all(self.db, template)
        states = self._states([r["last_job"] for r in rows if r["last_job"]])
        return [_view(r, states.get(r["last_job"])) for r in rows]

    def instance(self, ref: str) -> InstanceView:
        """One instance with its job history and its last job's plan.

        Args:
            ref: ``NAME`` when only one template has an instance of that name, else
                ``TEMPLATE/NAME``.
        """
        row = self._instance_row(ref)
        states = self._states([row["last_job"]] if row["last_job"] else [])
        history = tuple(self._history(row["template"], row["name"]))
        plan = job_plan(self.db, row["last_job"]) if row["last_job"] else None
        view = _view(row, states.get(row["last_job"]))
        return replace(view, history=history, plan=plan)

    def plans_of(self, job_ids: list[str]) -> dict[str, PlanView]:
        """The newest plan of each job that has one (the approvals list's counts)."""
        out = {}
        for job_id in job_ids:
            plan = job_plan(self.db, job_id)
            if plan is not None:
                out[job_id] = plan
        return out

    def job_plan(self, ref: str) -> PlanView | None:
        """The newest plan of a job (``jobs show``), None when it has none."""
        return job_plan(self.db, queries.resolve(self.db, ref))

    # -- the destroy --------------------------------------------------------------

    def destroy_params(self, ref: str) -> tuple[InstanceView, dict[str, Any], list[str]]:
        """What a destroy of ``ref`` would run with: the instance, the non-secret parameters
        of its last job, and the secret parameters that must be given again (a job's
        secrets are dropped when it ends)."""
        inst = self._instance_row(ref)
        view = _view(inst, None)
        self._refuse_destroy(view)
        tpl = self._destroy_template(view)
        last, _ = queries.get(self.db, str(inst["last_job"]))
        secret = tpl.secret_names()
        public = {k: v for k, v in (last["params"] or {}).items() if k not in secret}
        needed = sorted(
            name
            for name, p in tpl.params.items()
            if p.secret and (name in (last["params"] or {}) or (p.required and p.default is None))
        )
        return view, public, needed

    def destroy_instance(
        self, ref: str, *, params: Mapping[str, Any] | None = None, reason: str = ""
    ) -> JobView:
        """Submit the gated destroy of an instance: a job that plans ``-destroy``, waits for
        an approver to see that plan, then applies it.

        The job takes the parameters of the instance's last job; secrets are dropped when a
        job ends, so secret parameters must be given again.

        Args:
            params: the secret parameters, again; a non-secret one is refused (it would
                make the plan about something else).
            reason: kept in the job's audit trail.
        """
        from opsconsole.core.service import SubmitRequest

        view, public, needed = self.destroy_params(ref)
        tpl = self._destroy_template(view)
        given = dict(params or {})
        secret = tpl.secret_names()
        extra = sorted(set(given) - secret)
        if extra:
            raise InvalidParams(
                f"only secret parameters can be given to a destroy; '{extra[0]}' is not secret "
                f"(the destroy of {view.ref} uses the parameters of job {view.last_job})"
            )
        missing = [n for n in needed if n not in given]
        if missing:
            raise InvalidParams(
                f"destroying {view.ref} needs its secret parameters again (they are dropped "
                f"when a job ends): -p {missing[0]}=@FILE"
            )
        if instance_of(tpl.raw, public) != view.name:
            raise InvalidTransition(
                f"the parameters of job {view.last_job} no longer name instance {view.ref} "
                f"under template '{view.template}' as the catalog has it now: nothing submitted"
            )
        reason = " ".join(reason.split())[:500]
        job = self.submit(
            SubmitRequest(template=tpl.name, params={**public, **given}, tags=(DESTROY_TAG,)),
            template=tpl,
        )
        job_store.note(
            self.db,
            job.id,
            "destroy_requested",
            self.now(),
            actor=self.identity.name,
            message=f"destroy of instance {view.ref}" + (f": {reason}" if reason else ""),
            data={"template": view.template, "instance": view.name, "reason": reason},
        )
        return job

    # -- helpers ------------------------------------------------------------------

    def _refuse_destroy(self, view: InstanceView) -> None:
        if view.status == "destroyed":
            raise InvalidTransition(
                f"instance {view.ref} is already destroyed (job {view.last_job})"
            )
        for job in self._history(view.template, view.name):
            if job.state in LIVE and DESTROY_TAG in job.tags:
                raise InvalidTransition(
                    f"a destroy of {view.ref} is already under way: job {job.id} is "
                    f"{job.state.value}"
                )
        if view.last_job is None:
            raise InvalidTransition(
                f"instance {view.ref} has no job to take the destroy's parameters from"
            )

    def _destroy_template(self, view: InstanceView) -> Template:
        catalog = self.current_catalog()
        if view.template not in catalog:
            raise NotFound(
                f"template '{view.template}' of instance {view.ref} is not in the catalog: "
                "it is needed to plan the destroy"
            )
        tpl = catalog.get(view.template)
        if tpl.terraform is None:
            raise InvalidParams(f"template '{view.template}' is not a Terraform template")
        return template_from_dict(destroy_spec(tpl.raw), tpl.source)

    def _instance_row(self, ref: str) -> Mapping[str, Any]:
        ref = ref.strip()
        template, sep, name = ref.rpartition("/")
        if sep:
            row = instance_store.get(self.db, template, name)
            if row is None:
                raise NotFound(f"no instance '{name}' of template '{template}'{self._known()}")
            return row
        rows = instance_store.named(self.db, name)
        if not rows:
            raise NotFound(f"no instance '{name}'{self._known()}")
        if len(rows) > 1:
            both = ", ".join(f"{r['template']}/{r['name']}" for r in rows)
            raise InvalidParams(
                f"instance name '{name}' is used by several templates ({both}): give TEMPLATE/NAME"
            )
        return rows[0]

    def _known(self) -> str:
        names = [f"{r['template']}/{r['name']}" for r in instance_store.list_all(self.db)]
        if not names:
            return " (there are no instances yet)"
        more = f", ... ({len(names)} in all)" if len(names) > CHOICES_SHOWN else ""
        return f" (instances: {', '.join(names[:CHOICES_SHOWN])}{more})"

    def _history(self, template: str, name: str) -> list[JobView]:
        """The template's jobs whose instance is ``name``, newest first.

        Read through the jobs' (template, created_at) index a page at a time, newest first,
        and matched on the instance each job's own snapshot renders: the cost is bounded by
        the template's recent jobs, never the whole table.
        """
        found: list[JobView] = []
        f = queries.JobFilter(template=template)
        for page in range(1, HISTORY_SCAN // HISTORY_PAGE + 1):
            rows, _ = queries.list_jobs(self.db, f, page=page, page_size=HISTORY_PAGE)
            for r in rows:
                if instance_of(r["spec"], r["params"] or {}) == name:
                    found.append(JobView.from_row(r))
                    if len(found) >= HISTORY_LIMIT:
                        return found
            if len(rows) < HISTORY_PAGE:
                break
        return found

    def _states(self, ids: list[str]) -> dict[str, str]:
        return {r["id"]: r["state"] for r in queries.rows_by_id(self.db, ids)} if ids else {}


def _view(row: Mapping[str, Any], last_state: str | None) -> InstanceView:
    return InstanceView(
        template=row["template"],
        name=row["name"],
        status=row["status"],
        last_job=row["last_job"],
        last_job_state=last_state,
        serial=row["serial"],
        plan_hash=row["plan_hash"],
        outputs=masked_outputs(row["outputs"]),
        resources=tuple(str(r) for r in row["resources"] or ()),
        problem=row["problem"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
