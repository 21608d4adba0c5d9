"""The job template catalog: operator-written YAML templates, and the parameters they take.

Templates and submitted parameters are both validated here, once, so the engine and the
faces can trust what they get. Rendering is deliberately tiny (``{{ name }}`` only, values
never re-scanned) so a parameter value can never turn into template code or extra argv
items.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from opsconsole.core.errors import InvalidParams, NotFound

PRIORITIES: dict[str, int] = {"low": 1, "normal": 5, "high": 10, "critical": 15}
MAX_PARAM_BYTES = 64 * 1024

RUNNERS = ("shell", "python")
FUTURE_RUNNERS = ("ansible", "terraform")
ON_INTERRUPT = ("mark", "requeue")
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"

_NAME_RE = re.compile(NAME_PATTERN)
_PARAM_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HANDLER_RE = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
)
_PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")
# Jinja habits (filters, attribute access, calls) that would otherwise pass through literally.
_EXPRESSION_RE = re.compile(r"\{\{\s*[A-Za-z_][A-Za-z0-9_-]*(?:\s*[|(\[]|\.[A-Za-z_])")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_PLAIN_SECONDS_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DURATION_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?[dhms])+")
_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([dhms])")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})
_SHOW_MAX = 40
_KNOWN_MAX = 10

_TOP_KEYS = (
    "name", "description", "runner", "command", "env", "handler", "isolate", "params",
    "priority", "timeout", "retries", "backoff", "concurrency", "on_interrupt",
    "partial_exit_codes", "tags",
)  # fmt: skip
_PARAM_KEYS = (
    "type", "required", "default", "secret", "pattern", "min", "max", "choices", "description",
)  # fmt: skip
_CONCURRENCY_KEYS = ("key", "limit")


class ParamType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    CHOICE = "choice"
    LIST = "list"


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter; ``default`` is already coerced (a list for list params)."""

    name: str
    type: ParamType
    required: bool = False
    default: Any = None
    secret: bool = False
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    description: str = ""


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

    def secret_names(self) -> frozenset[str]:
        """Names whose values must be masked in logs, messages and job listings."""
        return frozenset(name for name, spec in self.params.items() if spec.secret)


@dataclass(frozen=True)
class CatalogProblem:
    """A template file that could not be loaded; the rest of the catalog still works."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


class Catalog:
    """All loaded templates plus the problems found, so one bad file never hides the rest."""

    def __init__(
        self,
        templates: dict[str, Template],
        problems: list[CatalogProblem],
        root: Path | None = None,
    ) -> None:
        self.templates = templates
        self.problems = problems
        self.root = root

    @classmethod
    def load(cls, root: Path) -> Catalog:
        """Load ``root/templates/*.yaml``; bad files become problems instead of exceptions."""
        root = Path(root)
        directory = root / "templates"
        if not directory.is_dir():
            problem = CatalogProblem(str(directory), None, "template directory not found")
            return cls({}, [problem], root)
        templates: dict[str, Template] = {}
        problems: list[CatalogProblem] = []
        try:
            files = sorted(
                (
                    path
                    for path in directory.iterdir()
                    if path.suffix in (".yaml", ".yml")
                    and not path.name.startswith(".")  # editor lock and swap files
                    and path.is_file()
                ),
                key=lambda path: path.name,
            )
        except OSError as exc:
            problem = CatalogProblem(str(directory), None, f"cannot list: {exc.strerror or exc}")
            return cls({}, [problem], root)
        for path in files:
            loaded = _load_file(path)
            if isinstance(loaded, CatalogProblem):
                problems.append(loaded)
                continue
            template, text = loaded
            first = templates.get(template.name)
            if first is not None:
                message = f"duplicate template name '{template.name}' (already in {first.source})"
                problems.append(CatalogProblem(str(path), _find_line(text, ("name",)), message))
                continue
            templates[template.name] = template
        return cls(templates, problems, root)

    def get(self, name: str) -> Template:
        template = self.templates.get(name)
        if template is not None:
            return template
        if not self.templates:
            raise NotFound(f"unknown template '{_show(name)}' (no templates are loaded)")
        close = difflib.get_close_matches(name, self.templates, n=3, cutoff=0.6)
        ordered = close + [n for n in self.names() if n not in close]
        raise NotFound(f"unknown template '{_show(name)}' (known: {_short_list(ordered)})")

    def names(self) -> list[str]:
        return sorted(self.templates)

    def __contains__(self, name: object) -> bool:
        return name in self.templates

    def __len__(self) -> int:
        return len(self.templates)


# --- durations and priorities -------------------------------------------------------------


def parse_duration(value: str | int | float) -> float:
    """Seconds from ``30s``/``10m``/``2h``/``1d``/``1h30m`` or a plain number of seconds."""
    seconds: float | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = None
    elif isinstance(value, str):
        text = re.sub(r"\s+", "", value)
        if _PLAIN_SECONDS_RE.fullmatch(text):
            seconds = float(text)
        elif _DURATION_RE.fullmatch(text):
            seconds, previous = 0.0, math.inf
            for number, unit in _DURATION_PART_RE.findall(text):
                size = _UNIT_SECONDS[unit]
                if size >= previous:  # "30m1h" or "1h1h" is a typo, not a sum
                    seconds = None
                    break
                previous = size
                seconds += float(number) * size
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise InvalidParams(f"invalid duration '{_show(value)}': use forms like 30s, 10m, 2h, 1d")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest ``parse_duration`` form, to millisecond precision."""
    if not math.isfinite(seconds):
        return str(seconds)
    sign = "-" if seconds < 0 else ""
    whole, millis = divmod(round(abs(seconds) * 1000), 1000)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if secs or millis or not parts:
        text = f"{secs}.{millis:03d}".rstrip("0") if millis else str(secs)
        parts.append(f"{text}s")
    return sign + "".join(parts)


def parse_priority(value: str | int) -> int:
    """A priority name or an integer 0..100 (also as a numeric string, as typed on a CLI)."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in PRIORITIES:
            return PRIORITIES[text]
        if re.fullmatch(r"[0-9]{1,6}", text):
            number = int(text)
    if number is None or not 0 <= number <= 100:
        raise InvalidParams(
            f"invalid priority '{_show(value)}': use low, normal, high, critical "
            "or an integer 0..100"
        )
    return number


def priority_name(value: int) -> str:
    for name, number in PRIORITIES.items():
        if number == value:
            return name
    return str(value)


# --- parameters ---------------------------------------------------------------------------


class _BadValue(Exception):
    """A value problem phrased to follow "parameter 'x' " (or a default's location)."""


def validate_params(template: Template, given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared parameter, typed; ``None`` given counts as not given."""
    prefix = f"template '{template.name}': "
    for key in given:
        if key not in template.params:
            known = _short_list(list(template.params)) if template.params else "none"
            raise InvalidParams(f"{prefix}unknown parameter '{_show(key)}' (known: {known})")
    result: dict[str, Any] = {}
    for name, spec in template.params.items():
        value = given.get(name)
        if value is None:
            if spec.required:
                raise InvalidParams(f"{prefix}missing required parameter '{name}'")
            result[name] = list(spec.default) if isinstance(spec.default, list) else spec.default
            continue
        try:
            result[name] = _coerce(spec, value)
        except _BadValue as exc:
            raise InvalidParams(f"{prefix}parameter '{name}' {exc}") from None
    return result


def _coerce(spec: ParamSpec, value: Any) -> Any:
    if isinstance(value, str):
        _check_text(value)
    match spec.type:
        case ParamType.STRING:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise _BadValue(f"must be a string, got {_kind(value)}")
            text = value if isinstance(value, str) else _render_value(value)
            _check_pattern(spec, text)
            return text
        case ParamType.INTEGER:
            number: Any = None
            if isinstance(value, bool):
                number = None
            elif isinstance(value, int):
                number = value
            elif isinstance(value, float) and value.is_integer():
                number = int(value)
            elif isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
                try:
                    number = int(value.strip())
                except ValueError:  # more digits than Python converts
                    number = None
            if number is None:
                raise _BadValue(f"must be an integer{_got(spec, value)}")
            _check_range(spec, number)
            return number
        case ParamType.NUMBER:
            real: float | None = None
            if isinstance(value, int | float) and not isinstance(value, bool):
                real = float(value)
            elif isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
                real = float(value.strip())
            if real is None:
                raise _BadValue(f"must be a number{_got(spec, value)}")
            if not math.isfinite(real):
                raise _BadValue("must be a finite number")
            _check_range(spec, real)
            return real
        case ParamType.BOOLEAN:
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if isinstance(value, str):
                word = value.strip().lower()
                if word in _TRUE:
                    return True
                if word in _FALSE:
                    return False
            raise _BadValue(
                f"must be a boolean (true/false, yes/no, on/off, 1/0){_got(spec, value)}"
            )
        case ParamType.CHOICE:
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str) or value not in spec.choices:
                raise _BadValue(f"must be one of: {', '.join(spec.choices)}")
            return value
        case ParamType.LIST:
            return _coerce_list(spec, value)
    raise _BadValue(f"has an unsupported type {spec.type!r}")  # pragma: no cover


def _coerce_list(spec: ParamSpec, value: Any) -> list[str]:
    items: Any
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError:
                items = None
            if not isinstance(items, list):
                raise _BadValue("must be a JSON array of strings or a comma-separated list")
        else:
            items = [part.strip() for part in text.split(",") if part.strip()]
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise _BadValue(f"must be a list of strings, got {_kind(value)}")
    result: list[str] = []
    total = 0
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise _BadValue(f"items must be strings, got {_kind(item)}")
        text = item if isinstance(item, str) else _render_value(item)
        total += _check_text(text) + (1 if result else 0)  # joined with commas when rendered
        result.append(text)
    if total > MAX_PARAM_BYTES:
        raise _BadValue(f"is too large ({total} bytes, max {MAX_PARAM_BYTES})")
    for text in result:
        _check_pattern(spec, text)
    return result


def _check_text(text: str) -> int:
    """Refuse what no runner can pass on safely; returns the UTF-8 size."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise _BadValue("is not valid UTF-8") from None
    if size > MAX_PARAM_BYTES:
        raise _BadValue(f"is too large ({size} bytes, max {MAX_PARAM_BYTES})")
    if "\x00" in text:
        raise _BadValue("contains a NUL byte")
    return size


def _check_pattern(spec: ParamSpec, text: str) -> None:
    if spec.pattern is not None and re.fullmatch(spec.pattern, text) is None:
        raise _BadValue(f"does not match {spec.pattern}")


def _check_range(spec: ParamSpec, number: float) -> None:
    if spec.min is not None and number < spec.min:
        raise _BadValue(f"must be >= {_render_value(spec.min)}")
    if spec.max is not None and number > spec.max:
        raise _BadValue(f"must be <= {_render_value(spec.max)}")


def _got(spec: ParamSpec, value: Any) -> str:
    """The ", got 'x'" suffix for a rejected value; empty for a secret one."""
    if spec.secret:
        return ""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return f", got '{_show(value)}'"
    return f", got {_kind(value)}"


# --- rendering ----------------------------------------------------------------------------


def render(text: str, values: Mapping[str, Any]) -> str:
    """Fill ``{{ name }}`` placeholders; substituted values are never scanned again."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise InvalidParams(f"unknown placeholder '{{{{ {name} }}}}'")
        return _render_value(values[name])

    return _PLACEHOLDER_RE.sub(substitute, text)


def render_argv(command: Sequence[str], values: Mapping[str, Any]) -> list[str]:
    """Render each item alone; a lone list placeholder fans out, a lone ``None`` vanishes."""
    argv: list[str] = []
    for item in command:
        whole = _PLACEHOLDER_RE.fullmatch(item)
        if whole is None:
            argv.append(render(item, values))
            continue
        name = whole.group(1)
        if name not in values:
            raise InvalidParams(f"unknown placeholder '{{{{ {name} }}}}'")
        value = values[name]
        if value is None:
            continue
        if isinstance(value, list | tuple):
            argv.extend(_render_value(element) for element in value)
        else:
            argv.append(_render_value(value))
    return argv


def _render_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return ",".join(_render_value(element) for element in value)
    return str(value)


# --- template schema ----------------------------------------------------------------------


class _SchemaError(InvalidParams):
    """A template error that knows its key path, so a file loader can find its line."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


def template_from_dict(data: Any, source: str = "") -> Template:
    """Validate a parsed template (a YAML file or a job's ``raw`` snapshot)."""
    if data is None:
        raise _SchemaError("template is empty: expected a mapping of keys")
    if not isinstance(data, dict):
        raise _SchemaError(f"template must be a mapping of keys, got {_kind(data)}")
    for key in data:
        if not isinstance(key, str) or key not in _TOP_KEYS:
            raise _SchemaError(_unknown_key(key, _TOP_KEYS), (key,))

    name = data.get("name")
    if name is None:
        raise _SchemaError("missing required key 'name'")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise _SchemaError(f"name must match {NAME_PATTERN}, got {_describe(name)}", ("name",))
    description = _optional_str(data, "description")

    runner = data.get("runner", "shell")
    if not isinstance(runner, str):
        raise _SchemaError(f"runner must be shell or python, got {_describe(runner)}", ("runner",))
    if runner in FUTURE_RUNNERS:
        raise _SchemaError(f"runner '{runner}' is not supported yet", ("runner",))
    if runner not in RUNNERS:
        raise _SchemaError(f"unknown runner '{_show(runner)}' (use shell or python)", ("runner",))

    params = _parse_params(data.get("params"))
    command, env, handler, isolate, partial = _parse_runner_keys(data, runner)
    concurrency_key, concurrency_limit = _parse_concurrency(data.get("concurrency"))

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
            raise _SchemaError(
                "timeout must be greater than 0 (leave it out for none)", ("timeout",)
            )
    retries = data.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise _SchemaError(
            f"retries must be an integer >= 0, got {_describe(retries)}", ("retries",)
        )
    backoff = _wrap(parse_duration, data.get("backoff", "5s"), "backoff")
    on_interrupt = data.get("on_interrupt", "mark")
    if on_interrupt not in ON_INTERRUPT:
        raise _SchemaError(
            f"on_interrupt must be mark or requeue, got {_describe(on_interrupt)}",
            ("on_interrupt",),
        )
    tags = _str_list(data.get("tags"), "tags")

    try:
        raw = json.loads(json.dumps(data, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise _SchemaError(f"template is not JSON-serialisable: {exc}") from None
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
    )


def _parse_runner_keys(
    data: dict[str, Any], runner: str
) -> tuple[tuple[str, ...] | None, dict[str, str], str | None, bool, tuple[int, ...]]:
    """The keys whose meaning depends on the runner; a key for the other runner is an error."""
    present = {key for key, value in data.items() if value is not None}
    wrong = ("handler", "isolate") if runner == "shell" else ("command", "partial_exit_codes")
    for key in wrong:
        if key in present:
            other = "python" if runner == "shell" else "shell"
            raise _SchemaError(f"{key} is only for runner {other}", (key,))

    command: tuple[str, ...] | None = None
    handler: str | None = None
    isolate = False
    if runner == "shell":
        if "command" not in present:
            raise _SchemaError("runner shell needs a command (a list of argv strings)", ("runner",))
        value = data["command"]
        if not isinstance(value, list) or not value:
            raise _SchemaError(
                f"command must be a non-empty list of argv strings, got {_describe(value)}",
                ("command",),
            )
        command = tuple(_argv_text(item, ("command", i)) for i, item in enumerate(value))
    else:
        if "handler" not in present:
            raise _SchemaError("runner python needs a handler ('module:function')", ("runner",))
        handler = data["handler"]
        if not isinstance(handler, str) or not _HANDLER_RE.fullmatch(handler):
            raise _SchemaError(
                f"handler must look like 'package.module:function', got {_describe(handler)}",
                ("handler",),
            )
        isolate = data.get("isolate", False) if "isolate" in present else False
        if not isinstance(isolate, bool):
            raise _SchemaError(
                f"isolate must be true or false, got {_describe(isolate)}", ("isolate",)
            )

    env: dict[str, str] = {}
    if "env" in present:
        if runner == "python" and not isolate:
            raise _SchemaError(
                "env needs isolate: true (an in-process handler shares the worker's environment)",
                ("env",),
            )
        value = data["env"]
        if not isinstance(value, dict):
            raise _SchemaError(f"env must be a mapping, got {_kind(value)}", ("env",))
        for key, item in value.items():
            if not isinstance(key, str) or not _ENV_NAME_RE.fullmatch(key):
                raise _SchemaError(
                    f"env name {_describe(key)} must match [A-Za-z_][A-Za-z0-9_]*", ("env", key)
                )
            env[key] = _argv_text(item, ("env", key))

    partial: tuple[int, ...] = ()
    if "partial_exit_codes" in present:
        value = data["partial_exit_codes"]
        if not isinstance(value, list):
            raise _SchemaError(
                f"partial_exit_codes must be a list of exit codes, got {_kind(value)}",
                ("partial_exit_codes",),
            )
        for i, code in enumerate(value):
            if isinstance(code, bool) or not isinstance(code, int) or not 1 <= code <= 255:
                raise _SchemaError(
                    f"partial_exit_codes items must be integers 1..255, got {_describe(code)}",
                    ("partial_exit_codes", i),
                )
        partial = tuple(value)
    return command, env, handler, isolate, partial


def _argv_text(item: Any, path: tuple[str | int, ...]) -> str:
    label = _label(path)
    if isinstance(item, bool) or not isinstance(item, str | int):
        raise _SchemaError(f"{label} must be a string, got {_describe(item)}", path)
    text = str(item)
    if "\x00" in text:
        raise _SchemaError(f"{label} contains a NUL byte", path)
    return text


def _check_placeholders(
    text: str, path: tuple[str | int, ...], params: dict[str, ParamSpec]
) -> None:
    expression = _EXPRESSION_RE.search(text)
    if expression is not None:
        end = text.find("}}", expression.start())
        snippet = text[expression.start() : end + 2 if end >= 0 else len(text)]
        raise _SchemaError(
            f"{_label(path)}: '{_show(snippet)}' is not supported: placeholders are plain "
            "{{ name }} (no filters or expressions)",
            path,
        )
    for match in _PLACEHOLDER_RE.finditer(text):
        if match.group(1) not in params:
            declared = _short_list(list(params)) if params else "none"
            raise _SchemaError(
                f"{_label(path)}: placeholder '{{{{ {match.group(1)} }}}}' names no declared "
                f"parameter (declared: {declared})",
                path,
            )


def _parse_concurrency(value: Any) -> tuple[str | None, int]:
    if value is None:
        return None, 1
    if not isinstance(value, dict):
        raise _SchemaError(
            f"concurrency must be a mapping with key and limit, got {_kind(value)}",
            ("concurrency",),
        )
    for key in value:
        if key not in _CONCURRENCY_KEYS:
            raise _SchemaError(
                _unknown_key(key, _CONCURRENCY_KEYS, "concurrency."), ("concurrency", key)
            )
    key_text = value.get("key")
    if not isinstance(key_text, str) or not key_text.strip():
        raise _SchemaError(
            f"concurrency.key must be a non-empty string, got {_describe(key_text)}",
            ("concurrency", "key") if "key" in value else ("concurrency",),
        )
    if "\x00" in key_text:
        raise _SchemaError("concurrency.key contains a NUL byte", ("concurrency", "key"))
    limit = value.get("limit", 1)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise _SchemaError(
            f"concurrency.limit must be an integer >= 1, got {_describe(limit)}",
            ("concurrency", "limit"),
        )
    return key_text, limit


def _parse_params(value: Any) -> dict[str, ParamSpec]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _SchemaError(
            f"params must be a mapping of parameters, got {_kind(value)}", ("params",)
        )
    specs: dict[str, ParamSpec] = {}
    for name, body in value.items():
        if not isinstance(name, str) or not _PARAM_NAME_RE.fullmatch(name):
            raise _SchemaError(
                f"parameter name {_describe(name)} must match [A-Za-z_][A-Za-z0-9_-]*",
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
        raise _SchemaError(
            f"{where} must be a mapping like {{type: string}}, got {_kind(body)}", here
        )
    for key in body:
        if not isinstance(key, str) or key not in _PARAM_KEYS:
            raise _SchemaError(_unknown_key(key, _PARAM_KEYS, f"{where}."), (*here, key))

    type_name = body.get("type", "string")
    try:
        kind = ParamType(type_name)
    except ValueError:
        types = ", ".join(member.value for member in ParamType)
        raise _SchemaError(
            f"{where}.type: unknown type {_describe(type_name)} (use {types})", (*here, "type")
        ) from None
    flags = {}
    for key in ("required", "secret"):
        flag = body.get(key, False)
        if not isinstance(flag, bool):
            raise _SchemaError(
                f"{where}.{key} must be true or false, got {_describe(flag)}", (*here, key)
            )
        flags[key] = flag
    description = _optional_str(body, "description", here)

    def only_for(key: str, kinds: tuple[ParamType, ...]) -> None:
        if body.get(key) is not None and kind not in kinds:
            allowed = " and ".join(k.value for k in kinds)
            raise _SchemaError(f"{where}.{key} only applies to {allowed} parameters", (*here, key))

    only_for("pattern", (ParamType.STRING, ParamType.LIST))
    only_for("min", (ParamType.INTEGER, ParamType.NUMBER))
    only_for("max", (ParamType.INTEGER, ParamType.NUMBER))
    only_for("choices", (ParamType.CHOICE,))

    pattern = body.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            raise _SchemaError(
                f"{where}.pattern must be a string, got {_kind(pattern)}", (*here, "pattern")
            )
        try:
            re.compile(pattern)
        except re.error as exc:
            raise _SchemaError(
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
            raise _SchemaError(
                f"{where}.{key} must be a number, got {_describe(bound)}", (*here, key)
            )
        bounds[key] = bound
    low, high = bounds["min"], bounds["max"]
    if low is not None and high is not None and low > high:
        raise _SchemaError(f"{where}.min must not be greater than max", (*here, "min"))

    choices: tuple[str, ...] = ()
    if kind is ParamType.CHOICE:
        raw_choices = body.get("choices")
        if not isinstance(raw_choices, list) or not raw_choices:
            raise _SchemaError(
                f"{where}.choices must be a non-empty list of strings", (*here, "choices")
            )
        for i, choice in enumerate(raw_choices):
            if not isinstance(choice, str):
                raise _SchemaError(
                    f"{where}.choices items must be strings, got {_describe(choice)} "
                    "(quote YAML words like 'yes', 'no', 'on', 'off')",
                    (*here, "choices", i),
                )
        if len(set(raw_choices)) != len(raw_choices):
            raise _SchemaError(f"{where}.choices has duplicates", (*here, "choices"))
        choices = tuple(raw_choices)

    if flags["required"] and body.get("default") is not None:
        raise _SchemaError(
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
        coerced = _coerce(spec, default)
    except _BadValue as exc:
        raise _SchemaError(f"{where}.default {exc}", (*here, "default")) from None
    return replace(spec, default=coerced)


def _optional_str(data: dict[str, Any], key: str, parent: tuple[str | int, ...] = ()) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        label = _label((*parent, key))
        raise _SchemaError(f"{label} must be a string, got {_describe(value)}", (*parent, key))
    return value


def _str_list(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _SchemaError(f"{key} must be a list of strings, got {_describe(value)}", (key,))
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _SchemaError(f"{key} items must be strings, got {_describe(item)}", (key, i))
    return tuple(value)


def _wrap(parse: Any, value: Any, key: str) -> Any:
    """Run a public parser and point its error at the template key."""
    try:
        return parse(value)
    except InvalidParams as exc:
        raise _SchemaError(f"{key}: {exc}", (key,)) from None


def _unknown_key(key: Any, known: Sequence[str], prefix: str = "") -> str:
    shown = _show(key) if isinstance(key, str) else _describe(key)
    close = difflib.get_close_matches(key, known, n=1) if isinstance(key, str) else []
    hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known: {', '.join(known)}"
    return f"unknown key '{prefix}{shown}' ({hint})"


def _label(path: tuple[str | int, ...]) -> str:
    label = ""
    for part in path:
        label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else str(part))
    return label


# --- files --------------------------------------------------------------------------------


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader, refusing duplicate keys: YAML would silently keep the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                ident = (key_node.tag, key_node.value)
                if ident in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key '{_show(key_node.value)}'",
                        key_node.start_mark,
                    )
                seen.add(ident)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def _load_file(path: Path) -> tuple[Template, str] | CatalogProblem:
    where = str(path)
    try:
        data_bytes = path.read_bytes()
    except OSError as exc:
        return CatalogProblem(where, None, f"cannot read file: {exc.strerror or exc}")
    try:
        text = data_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data_bytes.count(b"\n", 0, exc.start) + 1
        message = f"not valid UTF-8 (byte 0x{data_bytes[exc.start]:02x} at offset {exc.start})"
        return CatalogProblem(where, line, message)
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        return CatalogProblem(where, line, f"invalid YAML: {exc.problem or exc.context or exc}")
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        return CatalogProblem(where, line, f"invalid YAML: {exc.reason} (#x{exc.character:04x})")
    except yaml.YAMLError as exc:
        return CatalogProblem(where, None, f"invalid YAML: {exc}")
    try:
        return template_from_dict(data, where), text
    except _SchemaError as exc:
        return CatalogProblem(where, _find_line(text, exc.path), str(exc))
    except InvalidParams as exc:
        return CatalogProblem(where, None, str(exc))


def _find_line(text: str, path: tuple[str | int, ...]) -> int | None:
    """The line of the deepest node on ``path`` that exists; best effort, only on errors."""
    try:
        node = yaml.compose(text, Loader=_BaseLoader)
    except yaml.YAMLError:
        return None
    line: int | None = None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


# --- message helpers ----------------------------------------------------------------------


def _show(value: Any) -> str:
    """A value fit for a one-line message: printable, and at most ~40 characters."""
    text = value if isinstance(value, str) else repr(value)
    short = text[:_SHOW_MAX]
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in short)
    return safe + ("…" if len(text) > _SHOW_MAX else "")


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"'{_show(value)}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _show(value)
    return _kind(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    for kind, words in (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (list, "a list"),
        (dict, "a mapping"),
    ):
        if isinstance(value, kind):
            return words
    return f"a {type(value).__name__}"


def _short_list(names: list[str]) -> str:
    shown = ", ".join(_show(name) for name in names[:_KNOWN_MAX])
    extra = len(names) - _KNOWN_MAX
    return f"{shown}, … ({extra} more)" if extra > 0 else shown
