"""Placeholder syntax and substitution: the only place that fills ``{{ name }}``.

Rendering is deliberately tiny (``{{ name }}`` only, values never re-scanned) so a parameter
value can never turn into template code or extra argv items. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from opsconsole.core.errors import InvalidParams

PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")
# Jinja habits (filters, attribute access, calls) that would otherwise pass through literally.
EXPRESSION_RE = re.compile(r"\{\{\s*[A-Za-z_][A-Za-z0-9_-]*(?:\s*[|(\[]|\.[A-Za-z_])")


def render(text: str, values: Mapping[str, Any]) -> str:
    """Fill ``{{ name }}`` placeholders; substituted values are never scanned again."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise InvalidParams(f"unknown placeholder '{{{{ {name} }}}}'")
        return render_value(values[name])

    return PLACEHOLDER_RE.sub(substitute, text)


def render_argv(command: Sequence[str], values: Mapping[str, Any]) -> list[str]:
    """Render each item alone; a lone list placeholder fans out, a lone ``None`` vanishes."""
    argv: list[str] = []
    for item in command:
        whole = PLACEHOLDER_RE.fullmatch(item)
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
            argv.extend(render_value(element) for element in value)
        else:
            argv.append(render_value(value))
    return argv


def render_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return ",".join(render_value(element) for element in value)
    return str(value)
