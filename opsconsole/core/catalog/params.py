"""Declared parameters and the values submitted for them: the only place values are coerced.

Each value is typed, range- and pattern-checked and size-limited here, once, so the engine
and the faces can trust what they get. A secret value never appears in a message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from opsconsole.core.catalog.messages import kind_of, printable, short_list
from opsconsole.core.catalog.render import render_value
from opsconsole.core.errors import InvalidParams

if TYPE_CHECKING:
    from opsconsole.core.catalog.schema import Template


MAX_PARAM_BYTES = 64 * 1024
MAX_HOSTS = 1000

# A DNS name (labels of letters, digits, '-' and '_'), an IPv4 or a bare IPv6 address: never
# an Ansible host pattern ('*', '!', '&', '~regex', '@file'), so a value names hosts and only.
_HOST_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*"
)
_IPV6_RE = re.compile(r"(?=.*:)[0-9A-Fa-f:.]{2,45}")


_INT_RE = re.compile(r"[+-]?[0-9]+")
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


class ParamType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    CHOICE = "choice"
    LIST = "list"
    HOSTS = "hosts"
    """Host names or IP addresses, comma or space separated: an Ansible inventory."""


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


class BadValue(Exception):
    """A value problem phrased to follow "parameter 'x' " (or a default's location)."""


def validate_params(template: Template, given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared parameter, typed; ``None`` given counts as not given."""
    prefix = f"template '{template.name}': "
    for key in given:
        if key not in template.params:
            known = short_list(list(template.params)) if template.params else "none"
            raise InvalidParams(f"{prefix}unknown parameter '{printable(key)}' (known: {known})")
    result: dict[str, Any] = {}
    for name, spec in template.params.items():
        value = given.get(name)
        if value is None:
            if spec.required:
                raise InvalidParams(f"{prefix}missing required parameter '{name}'")
            result[name] = list(spec.default) if isinstance(spec.default, list) else spec.default
            continue
        try:
            result[name] = coerce(spec, value)
        except BadValue as exc:
            raise InvalidParams(f"{prefix}parameter '{name}' {exc}") from None
    return result


def coerce(spec: ParamSpec, value: Any) -> Any:
    if isinstance(value, str):
        _check_text(value)
    match spec.type:
        case ParamType.STRING:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise BadValue(f"must be a string, got {kind_of(value)}")
            text = value if isinstance(value, str) else render_value(value)
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
                raise BadValue(f"must be an integer{_got(spec, value)}")
            _check_range(spec, number)
            return number
        case ParamType.NUMBER:
            real: float | None = None
            if isinstance(value, int | float) and not isinstance(value, bool):
                real = float(value)
            elif isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
                real = float(value.strip())
            if real is None:
                raise BadValue(f"must be a number{_got(spec, value)}")
            if not math.isfinite(real):
                raise BadValue("must be a finite number")
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
            raise BadValue(
                f"must be a boolean (true/false, yes/no, on/off, 1/0){_got(spec, value)}"
            )
        case ParamType.CHOICE:
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str) or value not in spec.choices:
                raise BadValue(f"must be one of: {', '.join(spec.choices)}")
            return value
        case ParamType.LIST:
            return _coerce_list(spec, value)
        case ParamType.HOSTS:
            return _coerce_hosts(value)
    raise BadValue(f"has an unsupported type {spec.type!r}")  # pragma: no cover


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
                raise BadValue("must be a JSON array of strings or a comma-separated list")
        else:
            items = [part.strip() for part in text.split(",") if part.strip()]
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise BadValue(f"must be a list of strings, got {kind_of(value)}")
    result: list[str] = []
    total = 0
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise BadValue(f"items must be strings, got {kind_of(item)}")
        text = item if isinstance(item, str) else render_value(item)
        total += _check_text(text) + (1 if result else 0)  # joined with commas when rendered
        result.append(text)
    if total > MAX_PARAM_BYTES:
        raise BadValue(f"is too large ({total} bytes, max {MAX_PARAM_BYTES})")
    for text in result:
        _check_pattern(spec, text)
    return result


def _coerce_hosts(value: Any) -> list[str]:
    if isinstance(value, str):
        items = [part for part in re.split(r"[,\s]+", value) if part]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise BadValue(f"must be host names, got {kind_of(value)}")
    hosts: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise BadValue(f"items must be host names, got {kind_of(item)}")
        _check_text(item)
        if not (_HOST_RE.fullmatch(item) or _IPV6_RE.fullmatch(item)):
            raise BadValue(
                f"'{printable(item)}' is not a host name or IP address (letters, digits, "
                "'.', '-', '_'; no patterns)"
            )
        if item not in hosts:
            hosts.append(item)
    if not hosts:
        raise BadValue("must name at least one host")
    if len(hosts) > MAX_HOSTS:
        raise BadValue(f"names too many hosts ({len(hosts)}, max {MAX_HOSTS})")
    return hosts


def _check_text(text: str) -> int:
    """Refuse what no runner can pass on safely; returns the UTF-8 size."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadValue("is not valid UTF-8") from None
    if size > MAX_PARAM_BYTES:
        raise BadValue(f"is too large ({size} bytes, max {MAX_PARAM_BYTES})")
    if "\x00" in text:
        raise BadValue("contains a NUL byte")
    return size


def _check_pattern(spec: ParamSpec, text: str) -> None:
    if spec.pattern is not None and re.fullmatch(spec.pattern, text) is None:
        raise BadValue(f"does not match {spec.pattern}")


def _check_range(spec: ParamSpec, number: float) -> None:
    if spec.min is not None and number < spec.min:
        raise BadValue(f"must be >= {render_value(spec.min)}")
    if spec.max is not None and number > spec.max:
        raise BadValue(f"must be <= {render_value(spec.max)}")


def _got(spec: ParamSpec, value: Any) -> str:
    """The ", got 'x'" suffix for a rejected value; empty for a secret one."""
    if spec.secret:
        return ""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return f", got '{printable(value)}'"
    return f", got {kind_of(value)}"
