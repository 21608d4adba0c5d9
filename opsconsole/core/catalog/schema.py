"""The template schema: the only place a parsed mapping becomes a validated ``Template``.

Every error carries the key path it is about, so the loader can point at a line of the file.
It never reads files: YAML files and a job's stored ``raw`` snapshot both come in parsed.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from opsconsole.core.access import TEAM_NAME_RE
from opsconsole.core.catalog.ansible import AnsibleSpec, parse_ansible
from opsconsole.core.catalog.approval import (
    ApprovalPolicy,
    PolicyError,
    parse_approval,
    parse_confirm,
)
from opsconsole.core.catalog.durations import parse_duration, parse_priority
from opsconsole.core.catalog.errors import SchemaError
from opsconsole.core.catalog.messages import described, kind_of, printable, short_list
from opsconsole.core.catalog.params import BadValue, ParamSpec, ParamType, coerce
from opsconsole.core.catalog.render import EXPRESSION_RE, PLACEHOLDER_RE
from opsconsole.core.catalog.schedule import ScheduleSpec, parse_schedule
from opsconsole.core.catalog.terraform import TerraformSpec, parse_terraform
from opsconsole.core.errors import InvalidParams

RUNNERS = ("shell", "python", "ansible", "terraform")
ON_INTERRUPT = ("mark", "requeue")
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"

_NAME_RE = re.compile(NAME_PATTERN)
_PARAM_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HANDLER_RE = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
)


_TOP_KEYS = (
    "schedule",
    "name", "description", "runner", "command", "env", "handler", "isolate", "params",
    "priority", "timeout", "retries", "backoff", "concurrency", "on_interrupt",
    "partial_exit_codes", "tags", "team", "approval", "confirm", "ansible", "terraform",
)  # fmt: skip
_PARAM_KEYS = (
    "type", "required", "default", "secret", "pattern", "min", "max", "choices", "description",
)  # fmt: skip
_CONCURRENCY_KEYS = ("key", "limit")
_RUNNER_KEYS: dict[str, tuple[str, ...]] = {
    "command": ("shell",),
    "partial_exit_codes": ("shell",),
    "handler": ("python",),
    "isolate": ("python",),
    "env": ("shell", "python"),
    "ansible": ("ansible",),
    "terraform": ("terraform",),
}
"""Keys whose meaning depends on the runner, and the runners they are for."""


@dataclass(frozen=True)
class Template:
    """A validated template; ``raw`` rebuilds it, so a job keeps the template it ran with."""

    name: str
    description: str
    runner: str
    command: tuple[str, ...] | None
    env: dict[str, str]
    handler: str | None
    isolate: bool
    """python: run the handler in a process of its own (default); false runs a trusted one
    on the worker's thread, where a crash or ``os._exit`` takes the worker down."""
    params: dict[str, ParamSpec]
    priority: int
    timeout_s: float | None
    retries: int
    backoff_s: float
    concurrency_key: str | None
    concurrency_limit: int
    on_interrupt: str
    partial_exit_codes: tuple[int, ...]
    tags: tuple[str, ...]
    source: str
    raw: dict[str, Any]
    team: str | None = None
    """The team that owns the template: its members (with the operator role) and admins
    may submit, cancel and retry its jobs; ``[teams.NAME]`` in opsconsole.toml defines it."""
    approval: ApprovalPolicy | None = None
    """Set when a job of this template waits in ``awaiting_approval`` before it can run."""
    confirm: str | None = None
    """The text (rendered with the parameters) an operator types to confirm a submit."""
    schedule: ScheduleSpec | None = None
    """When it runs by itself (``schedule:``): kept as a schedule named like the template."""
    ansible: AnsibleSpec | None = None
    """runner ansible: the playbook or ad-hoc module, inventory and variables."""
    terraform: TerraformSpec | None = None
    """runner terraform: the module and the instance it is applied to."""

    def what_runs(self) -> str:
        """What it runs, in one line, whatever its runner: what listings and prompts show."""
        if self.command:
            return " ".join(json.dumps(c) if " " in c else c for c in self.command)
        if self.ansible is not None:
            a = self.ansible
            what = f"playbook {a.playbook}" if a.playbook else f"module {a.module} {a.module_args}"
            return what.rstrip()
        if self.terraform is not None:
            tf = self.terraform
            mode = " (destroy)" if tf.destroy else " (plan only)" if tf.plan_only else ""
            return f"module {tf.module} on instance {tf.instance}{mode}"
        return self.handler or ""

    def secret_names(self) -> frozenset[str]:
        """Names whose values must be masked in logs, messages and job listings."""
        return frozenset(name for name, spec in self.params.items() if spec.secret)


def template_from_dict(data: Any, source: str = "") -> Template:
    """Validate a parsed template (a YAML file or a job's ``raw`` snapshot)."""
    if data is None:
        raise SchemaError("template is empty: expected a mapping of keys")
    if not isinstance(data, dict):
        raise SchemaError(f"template must be a mapping of keys, got {kind_of(data)}")
    for key in data:
        if not isinstance(key, str) or key not in _TOP_KEYS:
            raise SchemaError(_unknown_key(key, _TOP_KEYS), (key,))

    name = data.get("name")
    if name is None:
        raise SchemaError("missing required key 'name'")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise SchemaError(f"name must match {NAME_PATTERN}, got {described(name)}", ("name",))
    description = _optional_str(data, "description")

    runner = data.get("runner", "shell")
    if not isinstance(runner, str):
        raise SchemaError(
            f"runner must be one of {', '.join(RUNNERS)}, got {described(runner)}", ("runner",)
        )
    if runner not in RUNNERS:
        raise SchemaError(
            f"unknown runner '{printable(runner)}' (use {', '.join(RUNNERS)})", ("runner",)
        )

    params = _parse_params(data.get("params"))
    command, env, handler, isolate, partial = _parse_runner_keys(data, runner)
    ansible = parse_ansible(data["ansible"]) if runner == "ansible" else None
    terraform = parse_terraform(data["terraform"]) if runner == "terraform" else None
    concurrency_key, concurrency_limit = _parse_concurrency(data.get("concurrency"))

    _check_program_is_fixed(command, env)
    texts: list[tuple[str, tuple[str | int, ...]]] = []
    texts += [(item, ("command", i)) for i, item in enumerate(command or ())]
    texts += [(value, ("env", key)) for key, value in env.items()]
    if concurrency_key is not None:
        texts.append((concurrency_key, ("concurrency", "key")))
    for text, path in texts:
        _check_placeholders(text, path, params)

    priority = _wrap(parse_priority, data.get("priority", "normal"), "priority")
    timeout: float | None = None
    if data.get("timeout") is not None:
        timeout = _wrap(parse_duration, data["timeout"], "timeout")
        if timeout <= 0:
            raise SchemaError(
                "timeout must be greater than 0 (leave it out for none)", ("timeout",)
            )
    retries = data.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise SchemaError(
            f"retries must be an integer >= 0, got {described(retries)}", ("retries",)
        )
    backoff = _wrap(parse_duration, data.get("backoff", "5s"), "backoff")
    on_interrupt = data.get("on_interrupt", "mark")
    if on_interrupt not in ON_INTERRUPT:
        raise SchemaError(
            f"on_interrupt must be mark or requeue, got {described(on_interrupt)}",
            ("on_interrupt",),
        )
    tags = _str_list(data.get("tags"), "tags")
    team = _parse_team(data.get("team"))
    try:
        approval = parse_approval(data.get("approval"))
        confirm = parse_confirm(data.get("confirm"))
    except PolicyError as exc:
        where: tuple[str | int, ...] = (
            ("confirm",)
            if str(exc).startswith("confirm")
            else (("approval", exc.key) if exc.key else ("approval",))
        )
        raise SchemaError(str(exc), where) from None
    if confirm is not None:
        _check_placeholders(confirm, ("confirm",), params)

    try:
        raw = json.loads(json.dumps(data, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"template is not JSON-serialisable: {exc}") from None
    return Template(
        name=name,
        description=description,
        runner=runner,
        command=command,
        env=env,
        handler=handler,
        isolate=isolate,
        params=params,
        priority=priority,
        timeout_s=timeout,
        retries=retries,
        backoff_s=backoff,
        concurrency_key=concurrency_key,
        concurrency_limit=concurrency_limit,
        on_interrupt=on_interrupt,
        partial_exit_codes=partial,
        tags=tags,
        source=source,
        raw=raw,
        team=team,
        approval=approval,
        confirm=confirm,
        schedule=parse_schedule(data.get("schedule")),
        ansible=ansible,
        terraform=terraform,
    )


def _parse_team(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not TEAM_NAME_RE.fullmatch(value):
        raise SchemaError(
            "team must be a team name (lowercase letters, digits, '.', '_' or '-'), "
            f"got {described(value)}",
            ("team",),
        )
    return value


def _parse_runner_keys(
    data: dict[str, Any], runner: str
) -> tuple[tuple[str, ...] | None, dict[str, str], str | None, bool, tuple[int, ...]]:
    """The keys whose meaning depends on the runner; a key for the other runner is an error."""
    present = {key for key, value in data.items() if value is not None}
    for key, owners in _RUNNER_KEYS.items():
        if key in present and runner not in owners:
            raise SchemaError(f"{key} is only for runner {' or '.join(owners)}", (key,))

    command: tuple[str, ...] | None = None
    handler: str | None = None
    isolate = False
    if runner in ("ansible", "terraform"):
        if runner not in present:
            article = "an" if runner == "ansible" else "a"
            raise SchemaError(f"runner {runner} needs {article} {runner}: block", ("runner",))
    elif runner == "shell":
        if "command" not in present:
            raise SchemaError("runner shell needs a command (a list of argv strings)", ("runner",))
        value = data["command"]
        if not isinstance(value, list) or not value:
            raise SchemaError(
                f"command must be a non-empty list of argv strings, got {described(value)}",
                ("command",),
            )
        command = tuple(_argv_text(item, ("command", i)) for i, item in enumerate(value))
    else:
        if "handler" not in present:
            raise SchemaError("runner python needs a handler ('module:function')", ("runner",))
        handler = data["handler"]
        if not isinstance(handler, str) or not _HANDLER_RE.fullmatch(handler):
            raise SchemaError(
                f"handler must look like 'package.module:function', got {described(handler)}",
                ("handler",),
            )
        isolate = data["isolate"] if "isolate" in present else True
        if not isinstance(isolate, bool):
            raise SchemaError(
                f"isolate must be true or false, got {described(isolate)}", ("isolate",)
            )

    env: dict[str, str] = {}
    if "env" in present:
        if runner == "python" and not isolate:
            raise SchemaError(
                "env needs isolate: true (an in-process handler shares the worker's environment)",
                ("env",),
            )
        value = data["env"]
        if not isinstance(value, dict):
            raise SchemaError(f"env must be a mapping, got {kind_of(value)}", ("env",))
        for key, item in value.items():
            if not isinstance(key, str) or not _ENV_NAME_RE.fullmatch(key):
                raise SchemaError(
                    f"env name {described(key)} must match [A-Za-z_][A-Za-z0-9_]*", ("env", key)
                )
            env[key] = _argv_text(item, ("env", key))

    partial: tuple[int, ...] = ()
    if "partial_exit_codes" in present:
        value = data["partial_exit_codes"]
        if not isinstance(value, list):
            raise SchemaError(
                f"partial_exit_codes must be a list of exit codes, got {kind_of(value)}",
                ("partial_exit_codes",),
            )
        for i, code in enumerate(value):
            if isinstance(code, bool) or not isinstance(code, int) or not 1 <= code <= 255:
                raise SchemaError(
                    f"partial_exit_codes items must be integers 1..255, got {described(code)}",
                    ("partial_exit_codes", i),
                )
        partial = tuple(value)
    return command, env, handler, isolate, partial


def _argv_text(item: Any, path: tuple[str | int, ...]) -> str:
    label = _label(path)
    if isinstance(item, bool) or not isinstance(item, str | int):
        raise SchemaError(f"{label} must be a string, got {described(item)}", path)
    text = str(item)
    if "\x00" in text:
        raise SchemaError(f"{label} contains a NUL byte", path)
    return text


def _check_program_is_fixed(command: tuple[str, ...] | None, env: dict[str, str]) -> None:
    """Parameters never choose what runs: no placeholder in the program or in PATH."""
    if command and _has_placeholder(command[0]):
        raise SchemaError(
            "command[0]: the program may not contain a placeholder (parameters never choose "
            "what runs): name it in the template, as a bare name from PATH or a script inside "
            "the catalog (scripts/deploy.sh), and pass the parameter as an argument",
            ("command", 0),
        )
    if "PATH" in env and _has_placeholder(env["PATH"]):
        raise SchemaError(
            "env.PATH may not contain a placeholder: it chooses the program a bare name runs",
            ("env", "PATH"),
        )


def _has_placeholder(text: str) -> bool:
    return bool(PLACEHOLDER_RE.search(text) or EXPRESSION_RE.search(text))


def _check_placeholders(
    text: str, path: tuple[str | int, ...], params: dict[str, ParamSpec]
) -> None:
    expression = EXPRESSION_RE.search(text)
    if expression is not None:
        end = text.find("}}", expression.start())
        snippet = text[expression.start() : end + 2 if end >= 0 else len(text)]
        raise SchemaError(
            f"{_label(path)}: '{printable(snippet)}' is not supported: placeholders are plain "
            "{{ name }} (no filters or expressions)",
            path,
        )
    for match in PLACEHOLDER_RE.finditer(text):
        if match.group(1) not in params:
            declared = short_list(list(params)) if params else "none"
            raise SchemaError(
                f"{_label(path)}: placeholder '{{{{ {match.group(1)} }}}}' names no declared "
                f"parameter (declared: {declared})",
                path,
            )


def _parse_concurrency(value: Any) -> tuple[str | None, int]:
    if value is None:
        return None, 1
    if not isinstance(value, dict):
        raise SchemaError(
            f"concurrency must be a mapping with key and limit, got {kind_of(value)}",
            ("concurrency",),
        )
    for key in value:
        if key not in _CONCURRENCY_KEYS:
            raise SchemaError(
                _unknown_key(key, _CONCURRENCY_KEYS, "concurrency."), ("concurrency", key)
            )
    key_text = value.get("key")
    if not isinstance(key_text, str) or not key_text.strip():
        raise SchemaError(
            f"concurrency.key must be a non-empty string, got {described(key_text)}",
            ("concurrency", "key") if "key" in value else ("concurrency",),
        )
    if "\x00" in key_text:
        raise SchemaError("concurrency.key contains a NUL byte", ("concurrency", "key"))
    limit = value.get("limit", 1)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise SchemaError(
            f"concurrency.limit must be an integer >= 1, got {described(limit)}",
            ("concurrency", "limit"),
        )
    return key_text, limit


def _parse_params(value: Any) -> dict[str, ParamSpec]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SchemaError(
            f"params must be a mapping of parameters, got {kind_of(value)}", ("params",)
        )
    specs: dict[str, ParamSpec] = {}
    for name, body in value.items():
        if not isinstance(name, str) or not _PARAM_NAME_RE.fullmatch(name):
            raise SchemaError(
                f"parameter name {described(name)} must match [A-Za-z_][A-Za-z0-9_-]*",
                ("params", name),
            )
        specs[name] = _parse_param(name, body)
    return specs


def _parse_param(name: str, body: Any) -> ParamSpec:
    here: tuple[str | int, ...] = ("params", name)
    where = f"params.{name}"
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise SchemaError(
            f"{where} must be a mapping like {{type: string}}, got {kind_of(body)}", here
        )
    for key in body:
        if not isinstance(key, str) or key not in _PARAM_KEYS:
            raise SchemaError(_unknown_key(key, _PARAM_KEYS, f"{where}."), (*here, key))

    type_name = body.get("type", "string")
    try:
        kind = ParamType(type_name)
    except ValueError:
        types = ", ".join(member.value for member in ParamType)
        raise SchemaError(
            f"{where}.type: unknown type {described(type_name)} (use {types})", (*here, "type")
        ) from None
    flags = {}
    for key in ("required", "secret"):
        flag = body.get(key, False)
        if not isinstance(flag, bool):
            raise SchemaError(
                f"{where}.{key} must be true or false, got {described(flag)}", (*here, key)
            )
        flags[key] = flag
    description = _optional_str(body, "description", here)

    def only_for(key: str, kinds: tuple[ParamType, ...]) -> None:
        if body.get(key) is not None and kind not in kinds:
            allowed = " and ".join(k.value for k in kinds)
            raise SchemaError(f"{where}.{key} only applies to {allowed} parameters", (*here, key))

    only_for("pattern", (ParamType.STRING, ParamType.LIST))
    only_for("min", (ParamType.INTEGER, ParamType.NUMBER))
    only_for("max", (ParamType.INTEGER, ParamType.NUMBER))
    only_for("choices", (ParamType.CHOICE,))

    pattern = body.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            raise SchemaError(
                f"{where}.pattern must be a string, got {kind_of(pattern)}", (*here, "pattern")
            )
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SchemaError(
                f"{where}.pattern is not a valid regular expression: {exc}", (*here, "pattern")
            ) from None
    bounds: dict[str, float | None] = {}
    for key in ("min", "max"):
        bound = body.get(key)
        if bound is not None and (
            isinstance(bound, bool)
            or not isinstance(bound, int | float)
            or not math.isfinite(bound)
        ):
            raise SchemaError(
                f"{where}.{key} must be a number, got {described(bound)}", (*here, key)
            )
        bounds[key] = bound
    low, high = bounds["min"], bounds["max"]
    if low is not None and high is not None and low > high:
        raise SchemaError(f"{where}.min must not be greater than max", (*here, "min"))

    choices: tuple[str, ...] = ()
    if kind is ParamType.CHOICE:
        raw_choices = body.get("choices")
        if not isinstance(raw_choices, list) or not raw_choices:
            raise SchemaError(
                f"{where}.choices must be a non-empty list of strings", (*here, "choices")
            )
        for i, choice in enumerate(raw_choices):
            if not isinstance(choice, str):
                raise SchemaError(
                    f"{where}.choices items must be strings, got {described(choice)} "
                    "(quote YAML words like 'yes', 'no', 'on', 'off')",
                    (*here, "choices", i),
                )
        if len(set(raw_choices)) != len(raw_choices):
            raise SchemaError(f"{where}.choices has duplicates", (*here, "choices"))
        choices = tuple(raw_choices)

    if flags["required"] and body.get("default") is not None:
        raise SchemaError(
            f"{where}: a required parameter cannot have a default", (*here, "default")
        )
    spec = ParamSpec(
        name=name,
        type=kind,
        required=flags["required"],
        secret=flags["secret"],
        pattern=pattern,
        min=low,
        max=high,
        choices=choices,
        description=description,
    )
    default = body.get("default")
    if default is None:
        return spec
    try:
        coerced = coerce(spec, default)
    except BadValue as exc:
        raise SchemaError(f"{where}.default {exc}", (*here, "default")) from None
    return replace(spec, default=coerced)


def _optional_str(data: dict[str, Any], key: str, parent: tuple[str | int, ...] = ()) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        label = _label((*parent, key))
        raise SchemaError(f"{label} must be a string, got {described(value)}", (*parent, key))
    return value


def _str_list(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SchemaError(f"{key} must be a list of strings, got {described(value)}", (key,))
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise SchemaError(f"{key} items must be strings, got {described(item)}", (key, i))
    return tuple(value)


def _wrap(parse: Any, value: Any, key: str) -> Any:
    """Run a public parser and point its error at the template key."""
    try:
        return parse(value)
    except InvalidParams as exc:
        raise SchemaError(f"{key}: {exc}", (key,)) from None


def _unknown_key(key: Any, known: Sequence[str], prefix: str = "") -> str:
    shown = printable(key) if isinstance(key, str) else described(key)
    close = difflib.get_close_matches(key, known, n=1) if isinstance(key, str) else []
    hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known: {', '.join(known)}"
    return f"unknown key '{prefix}{shown}' ({hint})"


def _label(path: tuple[str | int, ...]) -> str:
    label = ""
    for part in path:
        label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else str(part))
    return label
