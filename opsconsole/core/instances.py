"""Terraform instances on disk: the one seam for where an instance's module copy and state live.

Each instance is ``$OPSCONSOLE_HOME/instances/<template>/<name>/`` (0700): a copy of the
template's module, Terraform's working data (``.terraform``), its local state, the saved plans
(``plans/``) and, when Terraform could not save its state, ``errored.tfstate``. Everything that
asks where state is, whether it is locked or errored, or what it holds goes through here, so
the state can move into the store's database behind these functions: with a shared store
(PostgreSQL) ``prepare`` adds ``BACKEND``, which points Terraform at its ``pg`` backend
(``core/store/tfstate.py``), and a plan planned on another host is written back here from its
sealed copy (``restored_plan``). Also the only place that says what an instance name may be.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsconsole.core.catalog import render
from opsconsole.core.catalog.terraform import TerraformSpec
from opsconsole.core.errors import InvalidParams
from opsconsole.core.secrets import MASK

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
"""A safe instance name: a file name and an identifier, whatever the parameters held."""
STATE = "terraform.tfstate"
ERRORED = "errored.tfstate"
LOCK = ".terraform.tfstate.lock.info"
PLANS = "plans"
BACKEND = "opsconsole_backend_override.tf"
"""Written into a shared instance's directory: an override file, so it replaces any backend
the module declares (the state is the store's, whatever the module says)."""
BACKEND_BLOCK = """# Written by opsconsole: this instance's state lives in the store (pg backend).
# The connection string reaches Terraform as PG_CONN_STR in its environment only.
terraform {
  backend "pg" {}
}
"""
KEEP = frozenset({".terraform", ".terraform.lock.hcl", STATE, STATE + ".backup", ERRORED, LOCK})
"""What a fresh module copy leaves in place: Terraform's own files, never the module's."""


def instance_name(spec: TerraformSpec, params: Mapping[str, Any]) -> str:
    """The instance a job works on, rendered from its parameters; refused unless safe."""
    name = render(spec.instance, params)
    if not NAME_RE.fullmatch(name):
        shown = name if name.isprintable() and len(name) <= 80 else repr(name[:80])
        raise InvalidParams(
            f"instance name '{shown}' is not a safe identifier (1-63 letters, digits, '-' or "
            "'_', starting with a letter or digit)"
        )
    return name


def concurrency_key(template: str, name: str) -> str:
    """The implied key that keeps two jobs off one instance's state at once (limit 1)."""
    return f"terraform:{template}:{name}"


def workspace(home: Path, template: str, name: str) -> Path:
    return Path(home) / "instances" / template / name


def module_source(catalog_dir: Path, module: str) -> Path:
    """The module's directory, which must lie inside the catalog (no ``..``, link or absolute
    path out of it)."""
    root = Path(catalog_dir).resolve()
    path = (root / module).resolve()
    if not path.is_relative_to(root) or Path(module).is_absolute():
        raise InvalidParams(f"terraform.module '{module}' is outside the catalog")
    if not path.is_dir():
        raise InvalidParams(f"terraform.module '{module}' is not a directory in the catalog")
    return path


def prepare(home: Path, template: str, name: str, module: Path, *, shared: bool = False) -> Path:
    """The instance's directory with a fresh copy of the module (state and ``.terraform``
    kept): what runs is what the catalog holds now. ``shared``: the state is the store's."""
    ws = workspace(home, template, name)
    ws.mkdir(parents=True, exist_ok=True, mode=0o700)
    ws.chmod(0o700)
    for entry in ws.iterdir():
        if entry.name in KEEP or entry.name == PLANS:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in module.iterdir():
        if entry.name in KEEP or entry.name == PLANS:
            continue
        if entry.is_dir():
            shutil.copytree(entry, ws / entry.name, symlinks=False)
        else:
            shutil.copy2(entry, ws / entry.name)
    if shared:
        (ws / BACKEND).write_text(BACKEND_BLOCK)
    plans = ws / PLANS
    plans.mkdir(exist_ok=True, mode=0o700)
    return ws


def plan_is_here(ws: Path, file: str) -> bool:
    """Whether a saved plan's file is this host's own, in this instance's directory (another
    host's path, even one this host can read, is not: its directory was never set up here)."""
    path = Path(file)
    return path.parent == ws / PLANS and path.is_file()


def restored_plan(ws: Path, data: bytes) -> Path:
    """A plan file written back from the store: private (0600, a fresh name in the
    instance's 0700 ``plans/``), for the apply to read and remove."""
    plans = ws / PLANS
    plans.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(prefix="restored-", suffix=".tfplan", dir=plans)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return Path(name)


def plan_file(ws: Path, job_id: str, attempt: int) -> Path:
    return ws / PLANS / f"{job_id}-{attempt}.tfplan"


def read_state(ws: Path) -> dict[str, Any] | None:
    """The instance's Terraform state as Terraform wrote it; None before the first apply and
    when it cannot be read (``problem`` then says why, so that is never taken for "empty")."""
    try:
        data = json.loads((ws / STATE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _state_problem(ws: Path) -> str | None:
    path = ws / STATE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not valid JSON"
        return f"its Terraform state {path} cannot be read ({why}): repair or restore it first"
    if not isinstance(data, dict):
        return f"its Terraform state {path} is not a state document: repair or restore it first"
    return None


def locked(ws: Path) -> bool:
    """Is the state locked (a Terraform process holds it, or one was killed holding it)?"""
    return (ws / LOCK).exists()


def problem(ws: Path) -> str | None:
    """Why the instance may not be applied now: Terraform left an ``errored.tfstate`` (it could
    not save the state after an apply; an operator must push it back and remove the file), or
    its state file cannot be read (never mistaken for an instance with nothing in it)."""
    if (ws / ERRORED).exists():
        return (
            f"Terraform could not save this instance's state and left {ws / ERRORED}: "
            f"resolve it first (in {ws}: terraform state push {ERRORED}, then remove the file)"
        )
    return _state_problem(ws)


def local_state_problem(ws: Path, workspace: str) -> str | None:
    """Why an instance whose state belongs in the store may not run here: this directory
    still holds a local state (applied while the store was SQLite), which a run against the
    store would silently ignore, creating everything anew."""
    if not (ws / STATE).exists():
        return None
    return (
        f"it has a local Terraform state ({ws / STATE}) but its state belongs in the store: "
        f"move it first (in {ws}, with PG_CONN_STR and PG_SCHEMA_NAME=opsconsole_terraform "
        f"set: mv {STATE} local.tfstate; terraform init -input=false; terraform workspace "
        f"select -or-create=true {workspace}; terraform state push local.tfstate)"
    )


def summary_of_state(state: Mapping[str, Any] | None) -> dict[str, Any]:
    """Serial, resource addresses (tainted ones marked) and outputs (sensitive masked)."""
    if not state:
        return {"serial": None, "resources": [], "outputs": {}}
    resources: list[str] = []
    for res in state.get("resources") or []:
        if res.get("mode") != "managed":
            continue
        base = ".".join(p for p in (res.get("module"), res.get("type"), res.get("name")) if p)
        for inst in res.get("instances") or []:
            key = inst.get("index_key")
            addr = base if key is None else f"{base}[{json.dumps(key)}]"
            resources.append(addr + (" (tainted)" if inst.get("status") == "tainted" else ""))
    outputs = {
        name: MASK if out.get("sensitive") else out.get("value")
        for name, out in (state.get("outputs") or {}).items()
    }
    return {"serial": state.get("serial"), "resources": resources, "outputs": outputs}
