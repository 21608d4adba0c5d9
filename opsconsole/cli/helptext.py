"""How a command's help shows its arguments: ``TEMPLATE``, not ``{TEMPLATE}`` / ``JOB <str>``.

The only place that adjusts Typer's help formatting (commands opt in with ``cls=Command``)
and that declares the options every command spells the same way.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand

from opsconsole.cli.coerce import plain_param


class PlainArgument(TyperArgument):
    """An argument shown by its metavar alone: the help text says what it is."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class Command(TyperCommand):
    """A command whose arguments read as ``opsconsole submit TEMPLATE``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.__class__ = PlainArgument

    def get_help_option(self, ctx: Any) -> Any:
        """The ``--help`` option, coerced without pydantic like every other (``coerce``)."""
        return plain_param(super().get_help_option(ctx))


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
"""The ``--json`` flag, the same on every command that has one."""
