"""A template's ``ansible:`` block: a playbook or one ad-hoc module, its inventory and vars.

The only place the block is validated (no I/O: whether the playbook or inventory file is
inside the catalog is checked by ``core/catalog/paths.py`` when the job runs, since links in
the catalog may change after it is loaded). The Ansible runner (``engine/runners/ansible.py``)
turns an ``AnsibleSpec`` and a job's parameters into an ansible-runner call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from opsconsole.core.catalog.errors import SchemaError
from opsconsole.core.catalog.messages import described, kind_of

KEYS = (
    "playbook", "module", "module_args", "inventory", "extravars", "limit", "tags",
    "skip_tags", "forks", "verbosity", "credential", "become",
)  # fmt: skip

INLINE_KEYS = ("all", "hosts", "vars", "children", "groups")
"""Top-level keys of an inline inventory: Ansible's YAML inventory, ``all:`` optional."""

MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TAG_RE = re.compile(r"[A-Za-z0-9_.:-]+")
_CREDENTIAL_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MAX_VERBOSITY = 4


@dataclass(frozen=True)
class AnsibleSpec:
    playbook: str | None
    """A playbook path inside the catalog; exactly one of ``playbook`` and ``module``."""
    module: str | None
    """An ad-hoc module run across the inventory (``ansible -m``)."""
    module_args: str = ""
    """Ansible's own text: it may use the extravars (``{{ name }}``), which are data."""
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

    @property
    def inventory_param(self) -> str | None:
        """The hosts parameter that is the inventory, if the inventory is one."""
        if isinstance(self.inventory, dict) and set(self.inventory) == {"param"}:
            return str(self.inventory["param"])
        return None


def _str_tuple(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise SchemaError(
            f"ansible.{key} must be a list of names, got {kind_of(value)}", ("ansible", key)
        )
    for i, item in enumerate(items):
        if not isinstance(item, str) or not _TAG_RE.fullmatch(item):
            raise SchemaError(
                f"ansible.{key} items must be tag names, got {described(item)}",
                ("ansible", key, i),
            )
    return tuple(items)


def _int(value: Any, key: str, low: int, high: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SchemaError(
            f"ansible.{key} must be an integer >= {low}, got {described(value)}", ("ansible", key)
        )
    if high is not None and value > high:
        raise SchemaError(f"ansible.{key} must be <= {high}", ("ansible", key))
    return value


def _inventory(value: Any) -> Any:
    where = ("ansible", "inventory")
    if value is None:
        raise SchemaError(
            "ansible needs an inventory: inline hosts/groups, a file in the catalog, "
            "or {param: NAME} naming a parameter of type hosts",
            ("ansible",),
        )
    if isinstance(value, str):
        if not value.strip():
            raise SchemaError("ansible.inventory must not be empty", where)
        return value
    if not isinstance(value, dict):
        raise SchemaError(
            f"ansible.inventory must be a mapping or a file path, got {kind_of(value)}", where
        )
    if "param" in value:
        if set(value) != {"param"} or not isinstance(value["param"], str):
            raise SchemaError(
                "ansible.inventory {param: NAME} takes only the name of a hosts parameter", where
            )
        return value
    for key in value:
        if key not in INLINE_KEYS:
            raise SchemaError(
                f"unknown key 'ansible.inventory.{key}' (use {', '.join(INLINE_KEYS)})",
                (*where, key),
            )
    return value


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
    if module is not None and not MODULE_RE.fullmatch(module):
        raise SchemaError(
            f"ansible.module must be a module name like ansible.builtin.command, "
            f"got {described(module)}",
            ("ansible", "module"),
        )
    if module is None and value.get("module_args") is not None:
        raise SchemaError("ansible.module_args is only for module", ("ansible", "module_args"))
    credential = value.get("credential")
    if credential is not None and not _CREDENTIAL_RE.fullmatch(credential):
        raise SchemaError(
            f"ansible.credential must be a credential name, got {described(credential)}",
            ("ansible", "credential"),
        )
    extravars = value.get("extravars") or {}
    if not isinstance(extravars, dict):
        raise SchemaError(
            f"ansible.extravars must be a mapping, got {kind_of(extravars)}",
            ("ansible", "extravars"),
        )
    for name, text in extravars.items():
        if not isinstance(name, str) or not _VAR_RE.fullmatch(name):
            raise SchemaError(
                f"ansible.extravars name {described(name)} must match [A-Za-z_][A-Za-z0-9_]*",
                ("ansible", "extravars", str(name)),
            )
        if isinstance(text, bool) or not isinstance(text, str | int | float):
            raise SchemaError(
                f"ansible.extravars.{name} must be a string, got {described(text)}",
                ("ansible", "extravars", name),
            )
    become = value.get("become", False)
    if not isinstance(become, bool):
        raise SchemaError(
            f"ansible.become must be true or false, got {described(become)}", ("ansible", "become")
        )
    return AnsibleSpec(
        playbook=playbook,
        module=module,
        module_args=value.get("module_args") or "",
        inventory=_inventory(value.get("inventory")),
        extravars={k: str(v) for k, v in extravars.items()},
        limit=value.get("limit"),
        tags=_str_tuple(value.get("tags"), "tags"),
        skip_tags=_str_tuple(value.get("skip_tags"), "skip_tags"),
        forks=_int(value.get("forks"), "forks", 1, 500),
        verbosity=_int(value.get("verbosity"), "verbosity", 0, MAX_VERBOSITY) or 0,
        credential=credential,
        become=become,
    )
