"""How a catalog message shows a value it did not write: the only place for that.

Keys, names and parameter values come from operators' files and commands, so a message shows
them printable, at most ~40 characters each, and long lists shortened. No I/O.
"""

from __future__ import annotations

from typing import Any

_SHOW_MAX = 40
_KNOWN_MAX = 10


def printable(value: Any) -> str:
    """A value fit for a one-line message: printable, and at most ~40 characters."""
    text = value if isinstance(value, str) else repr(value)
    short = text[:_SHOW_MAX]
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in short)
    return safe + ("…" if len(text) > _SHOW_MAX else "")


def described(value: Any) -> str:
    if isinstance(value, str):
        return f"'{printable(value)}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return printable(value)
    return kind_of(value)


def kind_of(value: Any) -> str:
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


def short_list(names: list[str]) -> str:
    shown = ", ".join(printable(name) for name in names[:_KNOWN_MAX])
    extra = len(names) - _KNOWN_MAX
    return f"{shown}, … ({extra} more)" if extra > 0 else shown
