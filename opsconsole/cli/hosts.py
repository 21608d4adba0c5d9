"""``jobs hosts``: an Ansible job's hosts by tasks, as a compact table or JSON, optionally live.

The only place that lays the hosts grid out as text lines. It fits the width it is given
(80 columns when piped) by keeping the newest tasks and saying how many it left out; lines
never end in spaces. What the grid holds and in which order is ``core.hosts``' business.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsconsole.cli import complete, output
from opsconsole.cli.helptext import Command, JsonOpt
from opsconsole.cli.session import service

if TYPE_CHECKING:
    from rich.text import Text

    from opsconsole.core.hosts import HostGrid

POLL = 0.25
"""Seconds between two reads of the grid while following."""
PIPE_WIDTH = 80
HOST_WIDTH = 24
"""The widest host column; longer names are cut with an ellipsis."""
RECAP_COLUMNS = (("ok", "ok"), ("chg", "changed"), ("fail", "failed"), ("unr", "unreachable"),
                 ("skip", "skipped"))  # fmt: skip
MAX_PROBLEMS = 10
"""Failed and unreachable cells whose message is printed under the table."""


def hosts(
    job: Annotated[
        str,
        typer.Argument(
            metavar="JOB",
            help="Job id or a unique prefix of it (an Ansible job).",
            show_default=False,
            autocompletion=complete.job_ids("any"),
        ),
    ],
    attempt: Annotated[
        int | None,
        typer.Option(metavar="N", help="Which attempt (default: the newest).", show_default=False),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option("-f", "--follow", help="Redraw as hosts finish tasks, until the job ends."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show an Ansible job's hosts by tasks: each task's result per host.

    Failed and unreachable hosts come first; the last line is the recap totals. Ctrl-C
    stops following, never the job.

    Examples:

    \b
      opsconsole jobs hosts j7k2m9
      opsconsole jobs hosts j7k --follow
      opsconsole jobs hosts j7k2m9 --attempt 1 --json
    """
    svc = service()
    job_id = svc.resolve(job)
    grid = svc.host_grid(job_id, attempt)
    if not follow:
        _show(grid, as_json)
        return
    try:
        _follow(job_id, attempt, as_json, grid)
    except KeyboardInterrupt:
        output.stopped_following(job_id)


def _show(grid: HostGrid, as_json: bool) -> None:
    if as_json:
        output.emit_json(grid.to_dict())
        return
    width = output.console().width if output.is_terminal() else PIPE_WIDTH
    for line in render(grid, width):
        output.console().print(line, no_wrap=True, overflow="ellipsis", crop=False)


def _follow(job_id: str, attempt: int | None, as_json: bool, grid: HostGrid) -> None:
    """Print the grid each time it changes until the job ends (its final grid included).

    On a terminal the grid is redrawn in place, cut to the screen's height; piped, each
    change is a new block (a JSON line with ``--json``).
    """
    svc = service()
    if as_json or not output.is_terminal():
        shown: dict[str, Any] | None = None
        while True:
            now = grid.to_dict()
            if now != shown:
                if shown is not None and not as_json:
                    output.line()
                _show(grid, as_json)
                shown = now
            if grid.final:
                return
            time.sleep(POLL)
            grid = svc.host_grid(job_id, attempt)
    from rich.console import Group
    from rich.live import Live

    console = output.console()

    def frame(g: HostGrid) -> Group:
        height = max(console.size.height - 12, 3)
        return Group(*render(g.window(max_hosts=height), console.width))

    with Live(frame(grid), console=console, auto_refresh=False, transient=False) as live:
        while not grid.final:
            time.sleep(POLL)
            grid = svc.host_grid(job_id, attempt)
            live.update(frame(grid), refresh=True)


# -- the text layout -----------------------------------------------------------------------


def _cut(text: str, width: int) -> str:
    text = output.visible(text)
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def title(grid: HostGrid) -> Text:
    """``j7k2m9 site-ping · attempt 1 of 2 · running · task 5 of 7 running: Install``."""
    from rich.text import Text

    t = Text()
    t.append(grid.job_id, style="bold")
    t.append(f" {output.visible(grid.template)}")
    if grid.attempt is not None:
        of = f" of {grid.attempts}" if grid.attempts > 1 else ""
        t.append(f" · attempt {grid.attempt}{of}")
    t.append(" · ")
    t.append_text(output.styled_state(grid.state.value))
    current = grid.current
    if grid.message:
        t.append(f" · {grid.message}", style="dim")
    elif current is not None:
        count = grid.task_count
        t.append(f" · task {current.seq + 1} of {count} running: ")
        t.append(output.visible(current.name), style="bold")
    return t


def legend() -> list[tuple[str, str, str]]:
    """(symbol, meaning, style) for every symbol a cell can show, the empty cell last."""
    from opsconsole.core.hosts import MEANINGS, NOT_RUN, STYLES, SYMBOLS

    out = [(SYMBOLS[s], MEANINGS[s], STYLES[s]) for s in SYMBOLS]
    return [*out, (NOT_RUN, "not run", "dim")]


def render(grid: HostGrid, width: int) -> list[Text]:
    """The grid as lines no wider than ``width``: title, table, tasks, problems, legend,
    and the recap totals last."""
    from rich.text import Text

    from opsconsole.core.hosts import NOT_RUN, STYLES, SYMBOLS

    width = max(width, 40)
    lines = [title(grid)]
    if grid.empty:
        lines.append(Text(_totals(grid)))
        return lines
    host_w = min(max([4, *(len(output.visible(h.name)) for h in grid.hosts)]), HOST_WIDTH)
    recap_w = sum(len(label) + 1 for label, _ in RECAP_COLUMNS) + 1
    cell_w = len(str(grid.tasks[-1].seq + 1)) if grid.tasks else 1
    room = (width - host_w - recap_w) // (cell_w + 1)
    shown = grid.window(max_tasks=max(room, 1))
    head = Text("HOST".ljust(host_w), style="bold")
    for task in shown.tasks:
        head.append(" ")
        head.append(str(task.seq + 1).rjust(cell_w), style="bold" if task.running else "")
    head.append(" ")
    for label, _ in RECAP_COLUMNS:
        head.append(" " + label, style="bold")
    lines.append(head)
    for host in shown.hosts:
        row = Text()
        row.append(_cut(host.name, host_w), style="bold red" if host.pinned else "")
        row.append(" " * (host_w - len(_cut(host.name, host_w))))
        for task in shown.tasks:
            cell = host.cells.get(task.seq)
            row.append(" " * cell_w)
            if cell is None:
                row.append(NOT_RUN, style="dim")
            else:
                row.append(SYMBOLS.get(cell.status, "?"), style=STYLES.get(cell.status, ""))
        row.append(" ")
        for label, key in RECAP_COLUMNS:
            value = getattr(host.totals, key)
            style = STYLES[key] if value and key != "ok" else ("dim" if not value else "")
            row.append(" " + str(value).rjust(len(label)), style=style)
        lines.append(row)
    if shown.hidden_tasks:
        first = shown.tasks[0].seq + 1 if shown.tasks else 0
        lines.append(
            Text(
                f"showing tasks {first}-{grid.tasks[-1].seq + 1} of {len(grid.tasks)}: "
                f"the first {shown.hidden_tasks} left out (--json has every task)",
                style="dim",
            )
        )
    lines.extend(_task_lines(shown, width))
    lines.extend(_problem_lines(grid, width))
    lines.extend(_legend_lines(width))
    lines.append(Text(_totals(grid)))
    for ln in lines:
        ln.rstrip()
    return lines


def _task_lines(grid: HostGrid, width: int) -> list[Text]:
    from rich.text import Text

    out = [Text("tasks", style="bold")]
    number_w = len(str(grid.tasks[-1].seq + 1)) if grid.tasks else 1
    play = None
    for task in grid.tasks:
        if task.play != play:
            play = task.play
            out.append(Text(_cut(f" play: {play}" if play else " (no play name)", width)))
        line = Text(f"  {str(task.seq + 1).rjust(number_w)} ")
        busy = grid.running_on(task.seq)
        tail = f"  … running on {busy} host{'s' if busy != 1 else ''}" if task.running else ""
        line.append(_cut(task.name, width - len(line.plain) - len(tail)))
        if tail:
            line.append(tail, style="bold")
        out.append(line)
    return out


def _problem_lines(grid: HostGrid, width: int) -> list[Text]:
    """The message of each failed or unreachable cell, pinned hosts first."""
    from rich.text import Text

    from opsconsole.core.hosts import BAD, STYLES, SYMBOLS

    found = [
        (host, cell) for host in grid.hosts for cell in host.cells.values() if cell.status in BAD
    ]
    out: list[Text] = []
    for host, cell in found[:MAX_PROBLEMS]:
        task = grid.task(cell.seq)
        line = Text()
        line.append(SYMBOLS[cell.status], style=STYLES[cell.status])
        line.append(" ")
        name = task.name if task is not None else ""
        line.append(
            _cut(f"{host.name} · {cell.seq + 1} {name}: {cell.msg or cell.status}", width - 2)
        )
        out.append(line)
    if len(found) > MAX_PROBLEMS:
        out.append(Text(f"… {len(found) - MAX_PROBLEMS} more (--json has every message)"))
    return out


def _legend_lines(width: int) -> list[Text]:
    from rich.text import Text

    out: list[Text] = []
    line = Text()
    for symbol, meaning, style in legend():
        item = f"{symbol} {meaning}"
        if line.plain and len(line.plain) + 2 + len(item) > width:
            out.append(line)
            line = Text()
        if line.plain:
            line.append("  ")
        line.append(symbol, style=style)
        line.append(f" {meaning}", style="dim")
    out.append(line)
    return out


def _totals(grid: HostGrid) -> str:
    where = "recap" if grid.from_recap else ("so far" if not grid.final else "totals")
    hosts = len(grid.hosts) + grid.hidden_hosts
    return (
        f"{where}: {grid.totals.line()} · {hosts} host{'s' if hosts != 1 else ''}, "
        f"{grid.task_count} task{'s' if grid.task_count != 1 else ''}"
    )


def register(app: Any) -> None:
    app.command("hosts", cls=Command)(hosts)
