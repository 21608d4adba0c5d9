"""A template's ``ansible:`` block: a playbook or one ad-hoc module, its inventory and vars.

Only validation here (no I/O); the Ansible runner (``engine/runners/ansible.py``) turns an
``AnsibleSpec`` and a job's parameters into an ansible-runner call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opsconsole.core.catalog.errors import SchemaError
from opsconsole.core.catalog.messages import described, kind_of

KEYS = (
    "playbook", "module", "module_args", "inventory", "extravars", "limit", "tags",
    "skip_tags", "forks", "verbosity", "credential", "become",
)  # fmt: skip


@dataclass(frozen=True)
class AnsibleSpec:
    playbook: str | None
    """A playbook path inside the catalog; exactly one of ``playbook`` and ``module``."""
    module: str | None
    """An ad-hoc module run across the inventory (``ansible -m``)."""
    module_args: str = ""
    inventory: Any = None
    """Inline hosts/groups (a mapping), a file in the catalog (a string), or
    ``{"param": NAME}`` naming a parameter of type hosts."""
    extravars: dict[str, str] = field(default_factory=dict)
    """Variable name -> text rendered from the parameters; reaches Ansible as data."""
    limit: str | None = None
    tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    forks: int | None = None
    verbosity: int = 0
    credential: str | None = None
    """The name of an SSH credential declared in opsconsole.toml."""
    become: bool = False


def parse_ansible(value: Any) -> AnsibleSpec:
    """Validate the ``ansible:`` block of a template."""
    if not isinstance(value, dict):
        raise SchemaError(f"ansible must be a mapping, got {kind_of(value)}", ("ansible",))
    for key in value:
        if key not in KEYS:
            raise SchemaError(f"unknown key 'ansible.{key}'", ("ansible", key))
    playbook, module = value.get("playbook"), value.get("module")
    if (playbook is None) == (module is None):
        raise SchemaError(
            "ansible needs exactly one of playbook (a path in the catalog) or module", ("ansible",)
        )
    for key in ("playbook", "module", "module_args", "limit", "credential"):
        item = value.get(key)
        if item is not None and not isinstance(item, str):
            raise SchemaError(
                f"ansible.{key} must be a string, got {described(item)}", ("ansible", key)
            )
    return AnsibleSpec(
        playbook=playbook,
        module=module,
        module_args=value.get("module_args") or "",
        inventory=value.get("inventory"),
        extravars={str(k): str(v) for k, v in (value.get("extravars") or {}).items()},
        limit=value.get("limit"),
        tags=tuple(value.get("tags") or ()),
        skip_tags=tuple(value.get("skip_tags") or ()),
        forks=value.get("forks"),
        verbosity=int(value.get("verbosity") or 0),
        credential=value.get("credential"),
        become=bool(value.get("become", False)),
    )
