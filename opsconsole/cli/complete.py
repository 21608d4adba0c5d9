"""Shell completion: the scripts for bash, zsh and fish, and what each Tab press offers.

The only place that knows completion. Candidates come from the catalog and from a read-only
glance at the store (``runtime.job_refs``): never the ORM, never a schema check or a write,
so a Tab press answers at once. A completer that fails offers nothing; no error or traceback
ever reaches the shell. What the shell reads (scripts, candidates) is written by Typer's
completion code in the shell's own format, not by ``output``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import typer

if TYPE_CHECKING:
    from opsconsole.config import Settings

PROG = "opsconsole"
COMPLETE_VAR = "_OPSCONSOLE_COMPLETE"
"""Set by the installed scripts (``complete_bash``, ``complete_zsh``, ``complete_fish``)."""

Candidates = list[tuple[str, str]]
"""Values with the hint zsh and fish show beside them (bash shows the values alone)."""


class Shell(StrEnum):
    """The shells opsconsole installs completion for."""

    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def quiet(completer: Callable[..., Candidates]) -> Callable[..., Candidates]:
    """Whatever goes wrong while completing (a broken catalog, a missing or locked store,
    a bad ``--home``), the shell gets no candidates instead of a traceback."""

    @functools.wraps(completer)
    def safe(*args: Any, **kwargs: Any) -> Candidates:
        try:
            return completer(*args, **kwargs)
        except Exception:
            return []

    return safe


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the command being typed would use: its global options (already on the
    command line), then the environment and the config file, as when it runs."""
    from opsconsole.config import load_settings

    root = ctx.find_root().params
    return load_settings(**{k: root.get(k) for k in ("home", "db", "catalog")})


# -- what Tab offers ------------------------------------------------------------------


@quiet
def template_names(ctx: typer.Context, incomplete: str) -> Candidates:
    """Template names, each with its description."""
    from opsconsole.runtime import open_catalog

    return [
        (t.name, _hint(t.description))
        for t in open_catalog(settings_of(ctx)).templates()
        if t.name.startswith(incomplete)
    ]


@quiet
def param_names(ctx: typer.Context, incomplete: str) -> Candidates:
    """``NAME=`` for each parameter of the template on the command line not given yet;
    ``NAME=@`` for a secret (read from a file, kept out of shell history); after ``=``,
    the allowed values of a parameter that has choices."""
    from opsconsole.runtime import open_catalog

    name = ctx.params.get("template") or next(iter(ctx.args), None)
    if not name:
        return []
    params = open_catalog(settings_of(ctx)).template(name).params
    key, sep, _ = incomplete.partition("=")
    if sep:
        for p in params:
            if p.name == key and not p.secret:
                values = p.choices or (["true", "false"] if p.type == "boolean" else [])
                return [(f"{key}={v}", _hint(p.description)) for v in values]
        return []
    given = {g.partition("=")[0].strip() for g in ctx.params.get("param") or ()}
    out: Candidates = []
    for p in params:
        if p.name in given:
            continue
        kind = "secret, read from @FILE (@- stdin)" if p.secret else p.type
        hint = f"{'required ' if p.required else ''}{kind}; {p.description}".rstrip("; ")
        out.append((f"{p.name}=@" if p.secret else f"{p.name}=", _hint(hint)))
    return out


def job_ids(which: Literal["any", "live", "finished"]) -> Callable[..., Candidates]:
    """A completer of job ids, live ones first (running, awaiting approval, queued, ...),
    then recently finished ones; ``which`` keeps only the ``live`` or ``finished`` ones,
    for commands that act on nothing else."""
    live = 0 if which == "finished" else 50
    finished = 0 if which == "live" else 30

    @quiet
    def complete_job(ctx: typer.Context, incomplete: str) -> Candidates:
        from opsconsole.runtime import job_refs

        refs = job_refs(settings_of(ctx), incomplete, live=live, finished=finished)
        return [(r.id, _hint(f"{r.state} {r.template}")) for r in refs]

    return complete_job


@quiet
def schedule_names(ctx: typer.Context, incomplete: str) -> Candidates:
    """Schedule names, each with its template and when it fires."""
    from opsconsole.runtime import schedule_refs

    return [
        (r.name, _hint(f"{r.template} {r.when}"))
        for r in schedule_refs(settings_of(ctx), incomplete)
    ]


@quiet
def instance_names(ctx: typer.Context, incomplete: str) -> Candidates:
    """Terraform instance names (``TEMPLATE/NAME`` where a name is not unique), each with
    its status and template."""
    from opsconsole.runtime import instance_refs

    return [
        (r.ref, _hint(f"{r.status} {r.template}"))
        for r in instance_refs(settings_of(ctx), incomplete)
    ]


@quiet
def states(incomplete: str) -> Candidates:
    """Job states: the live ones an operator looks for most first, then the final ones."""
    from opsconsole.core.states import FINAL, LIVE, JobState

    first = (JobState.RUNNING, JobState.AWAITING_APPROVAL, JobState.QUEUED)
    ordered = [*first, *sorted(LIVE - set(first)), *sorted(FINAL)]
    return [
        (s.value, "live" if s in LIVE else "final")
        for s in ordered
        if s.value.startswith(incomplete)
    ]


@quiet
def priorities(incomplete: str) -> Candidates:
    """Priority names, most urgent first, with their number."""
    from opsconsole.core.catalog import PRIORITIES

    ranked = sorted(PRIORITIES.items(), key=lambda kv: -kv[1])
    return [(name, str(n)) for name, n in ranked if name.startswith(incomplete)]


def _hint(text: str | None) -> str:
    """One short line: a multi-line description would break the shell's menu."""
    first = " ".join((text or "").split())
    return first if len(first) <= 70 else first[:69] + "…"


# -- scripts --------------------------------------------------------------------------


BASH_SCRIPT = r"""
_opsconsole_completion() {
    local IFS=$'\n'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \
                   COMP_CWORD=$COMP_CWORD \
                   _OPSCONSOLE_COMPLETE=complete_bash $1 ) )
    # NAME= and NAME=@ wait for their value: no space after them
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *[=@] ]]; then
        compopt -o nospace
    fi
    return 0
}

complete -o nosort -o default -F _opsconsole_completion opsconsole
""".strip()
"""Typer's bash script, plus ``nosort`` (live jobs stay first, as offered) and no space
after a parameter's ``NAME=`` (bash 4.4 or later, as Typer's)."""


def script(shell: Shell) -> str:
    if shell is Shell.bash:
        return BASH_SCRIPT
    from typer.completion import get_completion_script

    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell.value)


def show_script(ctx: typer.Context, value: Shell | None) -> None:
    """``--show-completion SHELL``: print the script, to keep or source it by hand."""
    if value is None or ctx.resilient_parsing:
        return
    typer.echo(script(value))
    raise typer.Exit()


def install_script(ctx: typer.Context, value: Shell | None) -> None:
    """``--install-completion SHELL``: write the script where the shell loads it."""
    if value is None or ctx.resilient_parsing:
        return
    from opsconsole.cli.exit_codes import ExitCode, fail

    try:
        path = _install_bash() if value is Shell.bash else _install_other(value)
    except OSError as exc:
        fail(f"cannot install {value} completion: {exc.strerror}: {exc.filename}")
        raise typer.Exit(ExitCode.USAGE) from None
    typer.echo(f"{value} completion installed in {path}; it works in shells started from now on")
    raise typer.Exit()


def _install_bash() -> Path:
    """Where Typer puts it: ``~/.bash_completions/opsconsole.sh``, sourced by ``~/.bashrc``."""
    path = Path.home() / ".bash_completions" / f"{PROG}.sh"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BASH_SCRIPT + "\n")
    rc = Path.home() / ".bashrc"
    line = f"source '{path}'"
    text = rc.read_text() if rc.is_file() else ""
    if line not in text.splitlines():
        sep = "" if not text or text.endswith("\n") else "\n"
        rc.write_text(f"{text}{sep}{line}\n")
    return path


def _install_other(shell: Shell) -> Path:
    from typer.completion import install

    return install(shell=shell.value, prog_name=PROG, complete_var=COMPLETE_VAR)[1]


# -- answering the shell --------------------------------------------------------------


def answer(command: Any) -> NoReturn:
    """Answer the shell's request (``$_OPSCONSOLE_COMPLETE``) for the built click command
    and exit: candidates on stdout in the shell's format, never a traceback."""
    from typer.completion import completion_init, shell_complete

    instruction = os.environ[COMPLETE_VAR]
    if instruction.startswith("source_") and instruction[7:] in Shell.__members__:
        typer.echo(script(Shell(instruction[7:])))  # click's way to ask for the script
        sys.exit(0)
    code = 0
    try:
        completion_init()  # Typer's bash/zsh/fish formats, which its scripts read
        code = shell_complete(command, {}, PROG, COMPLETE_VAR, instruction)
    except (Exception, KeyboardInterrupt):
        code = 0
    sys.exit(code)
