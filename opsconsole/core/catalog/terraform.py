"""A template's ``terraform:`` block: a module in the catalog, applied per named instance.

Only validation here (no I/O); the Terraform runner (``engine/runners/terraform.py``) plans
and applies, and ``core/instances.py`` owns where an instance's state lives.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opsconsole.core.catalog.errors import SchemaError
from opsconsole.core.catalog.messages import described, kind_of

DESTROY_POLICY = {"required": 1}
"""The approval a destroy needs when its template declares none: nothing destroys an
instance without an approver seeing the plan."""

KEYS = ("module", "instance", "vars", "plan_only", "destroy")


@dataclass(frozen=True)
class TerraformSpec:
    module: str
    """The module's directory inside the catalog (``terraform/web_app``)."""
    instance: str
    """The instance name pattern, rendered from the parameters (``"{{ app_name }}"``)."""
    vars: dict[str, str] = field(default_factory=dict)
    """Terraform variable -> text rendered from the parameters. A variable whose text names a
    secret parameter reaches Terraform as ``TF_VAR_name`` in the environment, never argv."""
    plan_only: bool = False
    """Stop after the plan (a drift check): never apply."""
    destroy: bool = False
    """Plan and apply the instance's destruction (``instances destroy`` sets it in the job's
    template snapshot, so the approval digest covers it)."""


def parse_terraform(value: Any) -> TerraformSpec:
    """Validate the ``terraform:`` block of a template."""
    if not isinstance(value, dict):
        raise SchemaError(f"terraform must be a mapping, got {kind_of(value)}", ("terraform",))
    for key in value:
        if key not in KEYS:
            raise SchemaError(f"unknown key 'terraform.{key}'", ("terraform", key))
    for key in ("module", "instance"):
        item = value.get(key)
        if not isinstance(item, str) or not item:
            raise SchemaError(
                f"terraform.{key} must be a non-empty string, got {described(item)}",
                ("terraform", key),
            )
    plan_only = value.get("plan_only", False)
    if not isinstance(plan_only, bool):
        raise SchemaError(
            f"terraform.plan_only must be true or false, got {described(plan_only)}",
            ("terraform", "plan_only"),
        )
    destroy = value.get("destroy", False)
    if not isinstance(destroy, bool):
        raise SchemaError(
            f"terraform.destroy must be true or false, got {described(destroy)}",
            ("terraform", "destroy"),
        )
    return TerraformSpec(
        module=value["module"],
        instance=value["instance"],
        vars={str(k): str(v) for k, v in (value.get("vars") or {}).items()},
        plan_only=plan_only,
        destroy=destroy,
    )


def is_destroy(spec: Any) -> bool:
    """Does a job's template snapshot plan the destruction of its instance?"""
    block = spec.get("terraform") if isinstance(spec, dict) else None
    return isinstance(block, dict) and block.get("destroy") is True


def destroy_spec(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A template's snapshot turned into its destroy: ``terraform.destroy: true``, gated
    (its own approval policy, else one approver), and no ``confirm:`` (a destroy is
    confirmed by typing the instance's name where it is asked for)."""
    spec = copy.deepcopy(dict(raw))
    spec["terraform"] = {**spec.get("terraform", {}), "destroy": True}
    if spec.get("approval") is None:
        spec["approval"] = dict(DESTROY_POLICY)
    spec.pop("confirm", None)
    return spec
