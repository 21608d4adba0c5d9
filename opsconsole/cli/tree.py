"""The command tree, built one command at a time: a command line pays only for its command.

Typer turns every registered function into a Click command by reading its signature and
annotations, which costs milliseconds per command; building all of them for every run made
``opsconsole --help`` and each command start several times slower than Typer's own import.
Here each group's subcommands are a ``LazyCommands`` mapping: it knows every name, in the
order they were registered, and builds a command (with Typer's own functions, so each is
exactly what Typer would have built) only when Click asks for it. A group's ``--help``
lists its subcommands from their registered help text, building none of them.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator, MutableMapping
from typing import Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandInfo, TyperInfo

from opsconsole.cli.coerce import plain, plain_param

Click = Any
"""A Click command or context (Typer's vendored Click; its classes are not public)."""


class LazyCommands(MutableMapping[str, Any]):
    """The subcommands of one group, keyed by name, each built on first access."""

    def __init__(self, source: typer.Typer, *, rich_markup_mode: Any = None) -> None:
        self.rich_markup_mode = rich_markup_mode
        self.entries: dict[str, CommandInfo | TyperInfo] = {}
        for info in source.registered_commands:
            assert info.callback is not None
            self.entries[info.name or typer.main.get_command_name(info.callback.__name__)] = info
        for group in source.registered_groups:
            name = typer.main.solve_typer_info_defaults(group).name
            assert isinstance(name, str)
            self.entries[name] = group
        self.built: dict[str, Click] = {}

    def __getitem__(self, name: str) -> Click:
        if name not in self.built:
            info = self.entries[name]  # KeyError: no such command
            if isinstance(info, CommandInfo):
                self.built[name] = plain(
                    typer.main.get_command_from_info(
                        info, pretty_exceptions_short=True, rich_markup_mode=self.rich_markup_mode
                    )
                )
            else:
                self.built[name] = self.shallow_group(info)
        return self.built[name]

    def shallow_group(self, info: TyperInfo) -> Click:
        """The group Typer builds for ``info``, with its subcommands left lazy too."""
        source = info.typer_instance
        assert source is not None
        empty = copy.copy(source)
        empty.registered_commands = []
        empty.registered_groups = []
        group = typer.main.get_group_from_info(
            _with(info, empty),
            pretty_exceptions_short=True,
            suggest_commands=True,
            rich_markup_mode=self.rich_markup_mode,
        )
        if type(group) is TyperGroup:
            group.__class__ = LazyGroup
        group.commands = LazyCommands(source, rich_markup_mode=self.rich_markup_mode)
        return plain(group)

    def summary(self, name: str) -> Click:
        """What a group's help shows for ``name``: the command if it is built, else a stand-in
        with the same name, help, short help and flags (building none of its options)."""
        if name in self.built:
            return self.built[name]
        info = self.entries[name]
        if isinstance(info, CommandInfo):
            text = info.help
            doc = inspect.getdoc(info.callback) if text is None else inspect.cleandoc(text)
            return TyperCommand(
                name,
                help=doc,
                short_help=info.short_help,
                hidden=info.hidden,
                deprecated=info.deprecated,
            )
        solved = typer.main.solve_typer_info_defaults(info)
        return TyperCommand(
            name,
            help=solved.help,
            short_help=solved.short_help,
            hidden=bool(solved.hidden),
            deprecated=bool(solved.deprecated),
        )

    def __setitem__(self, name: str, command: Click) -> None:
        self.built[name] = command
        self.entries.setdefault(name, CommandInfo(name=name))

    def __delitem__(self, name: str) -> None:
        del self.entries[name]
        self.built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries


def _with(info: TyperInfo, instance: typer.Typer) -> TyperInfo:
    """A copy of ``info`` that builds from another Typer instance."""
    out = copy.copy(info)
    out.typer_instance = instance
    return out


class LazyGroup(TyperGroup):
    """A Typer group whose subcommands are built only when used (see the module's doc)."""

    def get_help_option(self, ctx: Click) -> Click:
        return plain_param(super().get_help_option(ctx))

    def list_commands(self, ctx: Click) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: Click, formatter: Click) -> None:
        commands = self.commands
        if not isinstance(commands, LazyCommands):
            super().format_commands(ctx, formatter)
            return
        shown = [(n, commands.summary(n)) for n in commands]
        shown = [(n, c) for n, c in shown if not c.hidden]
        if not shown:
            return
        # the same layout as Typer's (and Click's): three times the default spacing
        limit = formatter.width - 6 - max(len(n) for n, _ in shown)
        rows = [(n, c.get_short_help_str(limit)) for n, c in shown]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
