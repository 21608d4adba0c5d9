"""The approval gate: approve, reject, expire, the approvals list, and the worker's check.

A mixin of ``OpsService`` (kept apart so the service module stays one responsibility). The
gate is bound to what runs (``core.digest``): an approval counts only for the digest it was
given for, and a job whose template or parameters changed since goes back to
``awaiting_approval`` in a new round, with an event saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsconsole.core.approval_detail import ApprovalDetail, approval_detail
from opsconsole.core.catalog import Template, render, template_from_dict, validate_params
from opsconsole.core.catalog.terraform import destroy_spec, is_destroy
from opsconsole.core.digest import DIGEST_PURPOSE, job_digest, template_hash
from opsconsole.core.errors import (
    Conflict,
    Forbidden,
    InvalidParams,
    InvalidTransition,
    NotFound,
    OpsError,
)
from opsconsole.core.host import ServiceHost
from opsconsole.core.secrets import MASK, split_secrets
from opsconsole.core.states import JobState
from opsconsole.core.store import approvals as approval_store
from opsconsole.core.store import plans as plan_store
from opsconsole.core.store import queries
from opsconsole.core.views import JobView

if TYPE_CHECKING:
    from collections.abc import Mapping


S = JobState
MAX_REASON = 500
SYSTEM_ACTOR = "opsconsole"
"""Who expires a request nobody answered: no person did."""


@dataclass(frozen=True)
class ApprovalRequest:
    """A job awaiting approval, as the approvals list shows it."""

    job: JobView
    round: int
    approvals: int
    required: int
    approvers: tuple[str, ...]
    expires_at: datetime | None
    self_approval: bool


class ApprovalsMixin(ServiceHost):
    # -- decisions -----------------------------------------------------------------

    def approve(self, ref: str, *, comment: str = "") -> JobView:
        """Approve a job awaiting approval as the calling OS user; opens the gate at
        ``required`` distinct approvals of the same digest."""
        job_id = queries.resolve(self.db, ref)
        row, _ = queries.get(self.db, job_id)
        view = JobView.from_row(row)
        policy = self._policy(row, "approve")
        self.authorize("approve", template=row.get("team"), job_id=view.id)
        actor = self.identity.name
        why = None
        if actor == row["submitted_by"] and not policy.self_approval:
            why = (
                f"{actor} submitted job {job_id} and may not approve it "
                "(the template does not allow self-approval)"
            )
        elif not policy.may_approve(actor, self.identity.groups):
            why = (
                f"{actor} is not an approver of template '{row['template']}' "
                f"(approvers: {', '.join(policy.approvers)})"
            )
        if why is not None:  # refused by the template's own policy: audited like a role's
            self.audit_refusal(job_id, "approve", why)
            raise Forbidden(why)
        comment = _text(comment, "comment", required=False)
        row = self._recheck(row)
        digest = self.digest_of(row)
        out, _count = approval_store.approve(
            self.db,
            job_id,
            int(row["gate_round"]),
            actor=actor,
            digest=digest,
            comment=comment,
            required=policy.required,
            now=self.now(),
        )
        return JobView.from_row(out, depends_on=view.depends_on)

    def reject(self, ref: str, *, reason: str) -> JobView:
        """Refuse a job awaiting approval: it ends ``rejected`` with ``reason`` (mandatory)."""
        job_id = queries.resolve(self.db, ref)
        reason = _text(reason, "reason", required=True)
        row, _ = queries.get(self.db, job_id)
        view = JobView.from_row(row)
        self._policy(row, "reject")
        self.authorize("reject", template=row.get("team"), job_id=view.id)
        out = approval_store.reject(
            self.db,
            job_id,
            int(row["gate_round"]),
            actor=self.identity.name,
            reason=reason,
            now=self.now(),
        )
        return JobView.from_row(out, depends_on=view.depends_on)

    def break_glass(self, ref: str, *, reason: str) -> tuple[JobView, int]:
        """Run a gated job now without its approvals, where its template allows it.

        The job is marked ``break_glass``, the decision names the digest of what runs (the
        worker's check accepts it like an approval) and a review is opened that another
        person with the approver role must acknowledge. Returns the job and the review's id.
        """
        job_id = queries.resolve(self.db, ref)
        row, _ = queries.get(self.db, job_id)
        view = JobView.from_row(row)
        policy = self._policy(row, "break the glass on")
        if not policy.break_glass:
            raise Forbidden(
                f"template '{row['template']}' does not allow break-glass on job {job_id} "
                "(approval.break_glass is not true): ask an approver"
            )
        reason = _text(reason, "reason", required=True)
        self.authorize("break-glass", template=row.get("team"), job_id=view.id)
        row = self._recheck(row)
        out, review = approval_store.break_glass(
            self.db,
            job_id,
            int(row["gate_round"]),
            actor=self.identity.name,
            digest=self.digest_of(row),
            reason=reason,
            now=self.now(),
        )
        return JobView.from_row(out, depends_on=view.depends_on), review

    def withdraw(self, ref: str) -> JobView:
        """The submitter takes back their own request awaiting approval: it ends ``rejected``
        with reason ``withdrawn by SUBMITTER`` (no approver role needed; anyone else rejects)."""
        job_id = queries.resolve(self.db, ref)
        row, _ = queries.get(self.db, job_id)
        view = JobView.from_row(row)
        self._policy(row, "withdraw")
        actor = self.identity.name
        if actor != row["submitted_by"]:
            raise Forbidden(
                f"{actor} may not cancel job {job_id}: it awaits approval and only its "
                f"submitter ({row['submitted_by']}) may withdraw it; to refuse it: "
                f"opsconsole reject {job_id} --reason TEXT"
            )
        out = approval_store.reject(
            self.db,
            job_id,
            int(row["gate_round"]),
            actor=actor,
            reason=f"withdrawn by {actor}",
            now=self.now(),
            withdrawn=True,
        )
        return JobView.from_row(out, depends_on=view.depends_on)

    def confirmation(self, template: str, params: Mapping[str, Any]) -> str | None:
        """The text an operator must type to submit ``template`` with ``params`` (rendered
        with the resolved values), or None when the template asks for no confirmation."""
        tpl = self.catalog.get(template)
        if tpl.confirm is None:
            return None
        public, _ = split_secrets(validate_params(tpl, params), tpl.secret_names())
        return confirm_text(tpl, public)

    def resolved_params(self, template: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """What ``template`` would run with: the validated parameters and their defaults,
        secret values masked (what a confirmation shows before the operator types)."""
        tpl = self.catalog.get(template)
        values = validate_params(tpl, params)
        secret = tpl.secret_names()
        return {k: MASK if k in secret else v for k, v in values.items()}

    def expire_approvals(self, now: datetime | None = None) -> list[str]:
        """Reject (reason ``expired``) the requests nobody answered in time; their ids.

        Called by every worker pool's periodic pass; two pools expiring one request at once
        decide it once (the loser's guard matches nothing and is skipped).
        """
        now = now or self.now()
        done = []
        for job_id, round_ in approval_store.expired(self.db, now):
            try:
                approval_store.reject(
                    self.db,
                    job_id,
                    round_,
                    actor=SYSTEM_ACTOR,
                    reason="expired",
                    now=now,
                    expired=True,
                )
            except (InvalidTransition, Conflict, NotFound):
                continue  # decided or re-gated meanwhile; a store error goes to the caller
            done.append(job_id)
        return done

    def approval_requests(self, limit: int = 500) -> list[ApprovalRequest]:
        """Jobs awaiting approval, oldest first, with how many approvals each has."""
        rows = approval_store.awaiting(self.db, limit)
        counts = approval_store.approval_counts(self.db, [r["id"] for r in rows])
        out = []
        for r in rows:
            tpl = _spec_template(r["spec"])
            policy = tpl.approval if tpl is not None else None
            out.append(
                ApprovalRequest(
                    job=JobView.from_row(r),
                    round=int(r["gate_round"]),
                    approvals=counts.get((r["id"], int(r["gate_round"])), 0),
                    required=policy.required if policy else 1,
                    approvers=policy.approvers if policy else (),
                    expires_at=r["approval_expires_at"],
                    self_approval=bool(policy and policy.self_approval),
                )
            )
        return out

    def approval_detail(self, ref: str) -> ApprovalDetail:
        """What approving ``ref`` now would approve (the console's prompt shows it)."""
        return approval_detail(self, ref)

    def approval_decisions(self, ref: str) -> list[dict[str, Any]]:
        """Every decision on a job (approve, reject, expire, void), oldest first."""
        job_id = queries.resolve(self.db, ref)
        return [dict(r) for r in approval_store.decisions(self.db, job_id)]

    # -- the digest and the worker's check ------------------------------------------

    def digest_of(self, row: Mapping[str, Any]) -> str:
        """The digest of what ``row`` would run now (its template, parameters, secrets)."""
        secrets = self.box.open(row["secret_blob"])
        plan = None
        if row.get("phase") is not None:  # Terraform: bound to the saved plan shown too
            saved = plan_store.latest(self.db, row["id"])
            plan = saved["hash"] if saved is not None and saved["status"] == "pending" else ""
        return job_digest(
            row["spec"],
            row["params"] or {},
            secrets,
            self.box.derive(DIGEST_PURPOSE),
            targets=(row["spec"] or {}).get("targets"),
            plan=plan,
        )

    def gate_refusal(self, row: Mapping[str, Any]) -> str | None:
        """Why a claimed gated job may not run, or None; when refused, the job is back in
        ``awaiting_approval`` (a new round, its approvals void) and the refusal is audited.

        The worker asks this at claim: a row set to ``queued`` by hand, parameters edited
        after the approval, or a template file changed since, all end here.
        """
        policy = self._row_policy(row)
        values: dict[str, Any] = {}
        if policy is None:
            # a job whose copy of a gated template lacks its gate was not submitted by
            # opsconsole (a row written by hand): it gets the catalog's template, and its gate
            spec = self._catalog_spec(row)
            policy = self._row_policy({"spec": spec}) if spec is not None else None
            if policy is None:
                return None
            why: str | None = (
                f"template '{row['template']}' asks for an approval the job's copy of it lacks"
            )
            values["spec"] = spec
        elif row.get("phase") == "plan":
            return None  # a Terraform plan changes nothing: it runs before the approval
        else:
            why = self._template_change(row)
            if why is not None:
                values["spec"] = self._catalog_spec(row)
        if why is None:
            digest = self.digest_of(row)
            round_ = int(row["gate_round"])
            if not row["approved_digest"]:
                why = "no approval opened its gate"
            elif row["approved_digest"] != digest:
                why = "its parameters or secrets changed since the approval"
            elif approval_store.matching(
                self.db, row["id"], round_, digest
            ) < policy.required and not approval_store.broke_glass(
                self.db, row["id"], round_, digest
            ):
                why = f"it has no matching approval record for round {round_}"
        if why is None:
            return None
        new_policy = _spec_template(values.get("spec", row["spec"]))
        expiry = new_policy.approval.expires_s if new_policy and new_policy.approval else 0
        approval_store.refuse_run(
            self.db,
            row["id"],
            int(row["attempts"]),
            why=why,
            expiry_s=expiry or policy.expires_s,
            actor=row.get("worker") or SYSTEM_ACTOR,
            now=self.now(),
            values=values,
        )
        return why

    # -- helpers -----------------------------------------------------------------

    def _policy(self, row: Mapping[str, Any], what: str) -> Any:
        policy = self._row_policy(row)
        if policy is None:
            raise InvalidTransition(
                f"cannot {what} job {row['id']}: template '{row['template']}' asks for no approval"
            )
        if row["state"] != S.AWAITING_APPROVAL.value:
            raise InvalidTransition(
                f"cannot {what} job {row['id']}: it is {row['state']}, not awaiting approval"
            )
        return policy

    @staticmethod
    def _row_policy(row: Mapping[str, Any]) -> Any:
        tpl = _spec_template(row["spec"])
        return tpl.approval if tpl is not None else None

    def _catalog_spec(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """The job's template as the catalog has it now; None when the catalog lacks it or
        cannot say which file is meant (then the job's own copy stands)."""
        catalog = self.current_catalog()
        if row["template"] not in catalog or catalog.ambiguity(row["template"]) is not None:
            return None
        spec = catalog.get(row["template"]).raw
        if is_destroy(row["spec"]):
            # a destroy job is its template's destroy form: comparing it with the plain
            # template would read the flag as a change, and a new round approve an apply
            return destroy_spec(spec)
        return dict(spec)

    def _template_change(self, row: Mapping[str, Any]) -> str | None:
        spec = self._catalog_spec(row)
        if spec is None or template_hash(spec) == template_hash(row["spec"]):
            return None
        return f"template '{row['template']}' changed since the job was submitted or approved"

    def _recheck(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        """Before an approval: a job whose template file changed starts a new round with the
        new template, so what is approved is what will run."""
        why = self._template_change(row)
        if why is None:
            return row
        spec = self._catalog_spec(row)
        tpl = _spec_template(spec)
        expiry = tpl.approval.expires_s if tpl and tpl.approval else 86400.0
        now = self.now()
        return approval_store.void_round(
            self.db,
            row["id"],
            int(row["gate_round"]),
            why=why,
            expires_at=now + timedelta(seconds=expiry),
            actor=self.identity.name,
            now=now,
            values={"spec": spec},
        )


def confirm_text(tpl: Template, public: Mapping[str, Any]) -> str:
    """``confirm:`` rendered with the job's non-secret parameters: what the operator types."""
    assert tpl.confirm is not None
    text = render(tpl.confirm, public).strip()
    if MASK in text:
        raise InvalidParams(f"template '{tpl.name}': confirm may not use a secret parameter")
    return text


def check_confirmation(tpl: Template, public: Mapping[str, Any], typed: str | None) -> None:
    """Refuse a submit of a template with ``confirm:`` unless ``typed`` is its rendered text."""
    if tpl.confirm is None:
        return
    expected = confirm_text(tpl, public)
    if typed is None:
        raise InvalidParams(
            f"template '{tpl.name}' asks for a typed confirmation: type \"{expected}\" "
            "(in scripts: --confirm VALUE); nothing submitted"
        )
    if typed.strip() != expected:
        raise InvalidParams(
            f'the confirmation does not match: type "{expected}" to submit '
            f"'{tpl.name}'; nothing submitted"
        )


def _spec_template(spec: Any) -> Template | None:
    try:
        return template_from_dict(spec)
    except OpsError:
        return None


def _text(value: str, what: str, *, required: bool) -> str:
    text = (value or "").strip()
    if required and not text:
        raise InvalidParams(f"a {what} is required: say why (--{what} TEXT)")
    if len(text) > MAX_REASON:
        raise InvalidParams(f"the {what} is longer than {MAX_REASON} characters")
    if not text.isprintable():
        raise InvalidParams(f"the {what} may not contain control characters")
    return text
