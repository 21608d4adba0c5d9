"""Typer's value coercion for the plain types of our options, without importing pydantic.

Recent Typer versions coerce every given option through a pydantic ``TypeAdapter``: each
command run imported pydantic (and its plugin loader, which reads every installed package's
metadata) and built an adapter per option, more CPU than importing Typer itself. Our options
are strings, integers, paths and lists of strings: ``plain`` gives each parameter of a
built command a coercion that turns such a value into its type at once and hands anything
else (a malformed integer, a range check that fails, a choice) to Typer's own coercion,
so every accepted value and every error message stays exactly Typer's.

With a Typer that has no such coercion (older versions), ``plain`` does nothing.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

try:  # Typer >= 0.22: coercion through pydantic, lazily per parameter
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer._param_types import coerce_cli_path
except ImportError:  # pragma: no cover - an older Typer coerces with Click's types
    RuntimeParam = None

_SLOW = object()
"""A value the plain rules leave to Typer's own coercion."""


def _unwrap(annotation: Any) -> Any:
    """``X`` for ``X | None``; the annotation itself otherwise."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _leaf(annotation: Any, info: Any, value: Any, param: Any, ctx: Any) -> Any:
    """``value`` as ``annotation`` when that is plain; ``_SLOW`` otherwise."""
    if getattr(info, "parser", None) is not None or getattr(info, "click_type", None):
        return _SLOW
    if annotation is str:
        return value if isinstance(value, str) else _SLOW
    if annotation is bool:
        return value if type(value) is bool else _SLOW
    if annotation is int:
        if type(value) is int:
            number = value
        elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
            number = int(value)
        else:
            return _SLOW
        if info.clamp or (info.min is not None and number < info.min):
            return _SLOW
        if info.max is not None and number > info.max:
            return _SLOW
        return number
    if (
        isinstance(annotation, type)
        and issubclass(annotation, Path)
        and info.path_type is None
        and isinstance(value, str)
        and value
    ):
        return coerce_cli_path(annotation(value), info, path_type=annotation, param=param, ctx=ctx)
    return _SLOW


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):  # type: ignore[misc,valid-type]
        """Strings, integers, paths and lists of them at once; the rest through Typer."""

        descriptor: Any = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            annotation = _unwrap(self.annotation)
            info = self.parameter_info
            if get_origin(annotation) is list and isinstance(value, list | tuple):
                (item,) = get_args(annotation) or (Any,)
                out = [_leaf(_unwrap(item), info, v, param, ctx) for v in value]
                if not any(v is _SLOW for v in out):
                    return out
            else:
                out = _leaf(annotation, info, value, param, ctx)
                if out is not _SLOW:
                    return out
            return build_runtime_param(self.descriptor)._coerce_value(value, param, ctx)


def plain(command: Any) -> Any:
    """Give ``command``'s parameters the plain coercion (see the module's doc); returns it."""
    for param in command.params:
        plain_param(param)
    return command


def plain_param(param: Any) -> Any:
    """Give one parameter the plain coercion (a Typer parameter not coerced yet); returns it."""
    descriptor = getattr(param, "type_descriptor", None)
    if (
        RuntimeParam is None
        or descriptor is None
        or descriptor.file_annotation is not None
        or getattr(param, "_runtime_param", 0) is not None
    ):
        return param
    param._runtime_param = PlainRuntimeParam(
        parameter_info=descriptor.parameter_info,
        annotation=descriptor.annotation,
        descriptor=descriptor,
    )
    return param
