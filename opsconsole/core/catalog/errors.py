"""The error a template's validation raises: it knows the key path it is about."""

from __future__ import annotations

from opsconsole.core.errors import InvalidParams


class SchemaError(InvalidParams):
    """A template error that knows its key path, so a file loader can find its line."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path
