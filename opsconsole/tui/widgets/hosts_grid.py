"""The hosts x tasks grid of an Ansible job: one row per host, one narrow column per task.

The only place that draws a ``HostGrid`` in the console. It is handed each new grid
(``show``) and never reads the store itself; rows and cells are updated in place, so the
cursor and the scroll position stay where the operator left them while hosts finish tasks.
Failed and unreachable hosts are the table's fixed rows: they stay on screen however far
the operator scrolls. Host names and messages are untrusted text: plain ``Text``, escaped.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Static
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

from opsconsole.core.hosts import (
    EXPLAINED,
    MEANINGS,
    NOT_RUN,
    STYLES,
    SYMBOLS,
    TOTAL_KEYS,
    Cell,
    HostGrid,
    HostRow,
)
from opsconsole.core.text import STATE_STYLES, duration, visible

HOST = "host"
RECAP = "recap"
NARROW = 110
"""Below this width the task list beside the grid is left out (the cell line names the task)."""
MAX_PINNED_ROWS = 8
"""At most this many pinned hosts stay fixed on screen; more scroll like the others."""


def task_key(seq: int) -> str:
    return f"t{seq}"


def cell_text(cell: Cell | None) -> Text:
    if cell is None:
        return Text(NOT_RUN, style="dim", justify="center")
    style = STYLES.get(cell.status, "")
    return Text(SYMBOLS.get(cell.status, "?"), style=style, justify="center")


def recap_text(host: HostRow) -> Text:
    """``✓4 ●3 ✗1``: the host's non-zero counts, each in its status's colour."""
    t = Text()
    for key in TOTAL_KEYS:
        value = getattr(host.totals, key)
        if value:
            if t.plain:
                t.append(" ")
            t.append(f"{SYMBOLS[key]}{value}", style=STYLES[key])
    return t


def host_text(host: HostRow) -> Text:
    return Text(visible(host.name), style="bold red" if host.pinned else "")


def title_text(grid: HostGrid) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(grid.job_id, style="bold")
    t.append(f" {visible(grid.template)}")
    if grid.attempt is not None:
        of = f" of {grid.attempts}" if grid.attempts > 1 else ""
        t.append(f" · attempt {grid.attempt}{of}")
    t.append(" · ")
    t.append(grid.state.value, style=STATE_STYLES.get(grid.state.value, ""))
    current = grid.current
    if grid.message:
        t.append(f" · {grid.message}", style="dim")
    elif current is not None:
        busy = sum(
            1 for h in grid.hosts if (c := h.cells.get(current.seq)) and c.status == "running"
        )
        t.append(f" · task {current.seq + 1} of {grid.task_count}: ")
        t.append(visible(current.name), style="bold")
        t.append(f" {SYMBOLS['running']} {busy} host{'s' if busy != 1 else ''}")
    return t


def totals_text(grid: HostGrid) -> Text:
    """The recap totals on one line, Ansible's words, each count in its status's colour."""
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("recap:" if grid.from_recap else ("so far:" if not grid.final else "totals:"),
             style="bold")  # fmt: skip
    for key in TOTAL_KEYS:
        value = getattr(grid.totals, key)
        t.append(f" {key}={value}", style=STYLES[key] if value else "dim")
    for key in ("rescued", "ignored"):
        value = getattr(grid.totals, key)
        if value:
            t.append(f" {key}={value}")
    hosts = len(grid.hosts)
    t.append(f" · {hosts} host{'s' if hosts != 1 else ''}, {grid.task_count} tasks", style="dim")
    return t


COMPACT = {"changed": "chg", "failed": "fail", "unreachable": "unr", "skipped": "skip",
           "running": "run", "ignored": "ign", "stopped": "stop"}  # fmt: skip
"""The legend's words on a narrow screen, so it stays one line."""


def legend_text(compact: bool = False) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    gap = " " if compact else "  "
    for status, symbol in SYMBOLS.items():
        word = COMPACT.get(status, MEANINGS[status]) if compact else MEANINGS[status]
        t.append(symbol, style=STYLES[status])
        t.append(f"{'' if compact else ' '}{word}{gap}", style="dim")
    t.append(NOT_RUN, style="dim")
    t.append("none" if compact else " not run", style="dim")
    return t


def detail_text(grid: HostGrid, host: str | None, seq: int | None) -> Text:
    """What the cursor is on: the cell's task, host, status, times and message."""
    if host is None or seq is None:
        return Text("")
    task = grid.task(seq)
    cell = grid.cell(host, seq)
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(visible(host), style="bold")
    if task is not None:
        t.append(f" · task {seq + 1} ")
        t.append(visible(task.name), style="bold")
        if task.play:
            t.append(f" (play {visible(task.play)})", style="dim")
    t.append(" · ")
    if cell is None:
        t.append("not run on this host", style="dim")
        return t
    meaning = EXPLAINED.get(cell.status) or MEANINGS.get(cell.status, cell.status)
    t.append(f"{SYMBOLS.get(cell.status, '?')} {meaning}",
             style=STYLES.get(cell.status, ""))  # fmt: skip
    if cell.started_at is not None:
        t.append(f" · {cell.started_at:%H:%M:%S}", style="dim")
        if cell.ended_at is not None:
            took = (cell.ended_at - cell.started_at).total_seconds()
            t.append(f" took {duration(took)}", style="dim")
    if cell.msg:
        t.append("\n")
        t.append(visible(" ".join(cell.msg.split())))
    return t


def tasks_text(grid: HostGrid, cursor: int | None) -> Text:
    """Every task by play: its number, name and how it went on the hosts so far; the task
    under the cursor highlighted, the running one marked."""
    t = Text()
    play = None
    width = len(str(grid.tasks[-1].seq + 1)) if grid.tasks else 1
    for task in grid.tasks:
        if task.play != play:
            play = task.play
            if t.plain:
                t.append("\n")
            t.append(visible(play or "(no play name)"), style="bold")
            t.append("\n")
        line = Text(f"{str(task.seq + 1).rjust(width)} ")
        line.append(visible(task.name))
        counts: dict[str, int] = {}
        for host in grid.hosts:
            cell = host.cells.get(task.seq)
            if cell is not None:
                counts[cell.status] = counts.get(cell.status, 0) + 1
        for status, symbol in SYMBOLS.items():
            if counts.get(status):
                line.append(f" {symbol}{counts[status]}", style=STYLES[status])
        if task.seq == cursor:
            line.stylize("reverse")
        elif task.running:
            line.stylize("bold")
        t.append_text(line)
        t.append("\n")
    t.rstrip()
    return t


class HostsGrid(Vertical):
    """Title, the grid, the cell under the cursor, the legend and the recap totals."""

    DEFAULT_CLASSES = "hosts-grid"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.grid: HostGrid | None = None
        self._shape: tuple[tuple[str, ...], tuple[int, ...], int] | None = None
        self._placed = False

    def compose(self) -> ComposeResult:
        yield Static(Text("loading…", style="dim"), id="hosts-title")
        yield Static(Text(""), id="hosts-empty")
        with Horizontal(id="hosts-body"):
            yield DataTable(
                id="hosts-table", cursor_type="cell", zebra_stripes=False, fixed_columns=2
            )
            with VerticalScroll(id="hosts-tasks"):
                yield Static(Text(""), id="hosts-task-list")
        yield Static(Text(""), id="hosts-fit")
        yield Static(Text(""), id="hosts-cell")
        yield Static(legend_text(), id="hosts-legend")
        yield Static(Text(""), id="hosts-totals")

    @property
    def table(self) -> DataTable[Text]:
        return self.query_one("#hosts-table", DataTable)

    def cursor_cell(self) -> tuple[str | None, int | None]:
        """The host and task seq under the cursor (None off the task columns)."""
        table = self.table
        if not table.row_count or not table.columns:
            return None, None
        try:
            row_key, column_key = table.coordinate_to_cell_key(table.cursor_coordinate)
        except CellDoesNotExist:
            return None, None
        column = str(column_key.value)
        host = str(row_key.value)
        if not column.startswith("t"):
            return host, None
        return host, int(column[1:])

    def show(self, grid: HostGrid) -> None:
        """Draw ``grid``: in place when its hosts and tasks are the ones already shown."""
        self.grid = grid
        self.query_one("#hosts-title", Static).update(title_text(grid))
        self.query_one("#hosts-totals", Static).update(totals_text(grid))
        empty = self.query_one("#hosts-empty", Static)
        empty.update(Text(grid.message or "", style="dim"))
        empty.display = grid.empty
        self.query_one("#hosts-body").display = not grid.empty
        hosts = tuple(h.name for h in grid.hosts)
        seqs = tuple(t.seq for t in grid.tasks)
        running = grid.current.seq if grid.current is not None else -1
        shape = (hosts, seqs, running)
        if shape == self._shape:
            self._update_cells(grid)
        else:
            self._rebuild(grid)
            self._shape = shape
        self._show_detail()
        self._show_fit()

    def _columns(self, grid: HostGrid) -> list[tuple[Text, str]]:
        width = len(str(grid.tasks[-1].seq + 1)) if grid.tasks else 1
        out = [(Text("HOST", style="bold"), HOST), (Text("RECAP", style="bold"), RECAP)]
        for task in grid.tasks:
            label = str(task.seq + 1).rjust(width)
            out.append(
                (Text(label, style="bold reverse" if task.running else ""), task_key(task.seq))
            )
        return out

    def _rebuild(self, grid: HostGrid) -> None:
        table = self.table
        host, seq = self.cursor_cell()
        table.clear(columns=True)
        for label, key in self._columns(grid):
            table.add_column(label, key=key)
        for row in grid.hosts:
            table.add_row(
                host_text(row),
                recap_text(row),
                *[cell_text(row.cells.get(t.seq)) for t in grid.tasks],
                key=row.name,
            )
        table.fixed_rows = min(grid.pinned, MAX_PINNED_ROWS)
        self._place_cursor(grid, host, seq)

    def _update_cells(self, grid: HostGrid) -> None:
        table = self.table
        for row in grid.hosts:
            key = RowKey(row.name)
            table.update_cell(key, ColumnKey(RECAP), recap_text(row))
            for task in grid.tasks:
                table.update_cell(
                    key, ColumnKey(task_key(task.seq)), cell_text(row.cells.get(task.seq))
                )

    def _place_cursor(self, grid: HostGrid, host: str | None, seq: int | None) -> None:
        """Back on the cell it was on; the first time, on the newest task of the first host
        (a failed one when there is one), so the newest tasks are in view."""
        table = self.table
        if not grid.hosts or not grid.tasks:
            return
        names = [h.name for h in grid.hosts]
        seqs = [t.seq for t in grid.tasks]
        if not self._placed or host not in names:
            host = names[0]
        if not self._placed or seq not in seqs:
            current = grid.current
            seq = current.seq if current is not None else seqs[-1]
        self._placed = True
        table.move_cursor(row=names.index(host), column=2 + seqs.index(seq), animate=False)

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        event.stop()
        self._show_detail()
        self._show_fit()

    def on_resize(self) -> None:
        narrow = self.size.width < NARROW
        self.set_class(narrow, "narrow-hosts")
        self.query_one("#hosts-legend", Static).update(legend_text(compact=narrow))
        self._show_fit()

    def _show_detail(self) -> None:
        grid = self.grid
        if grid is None:
            return
        host, seq = self.cursor_cell()
        self.query_one("#hosts-cell", Static).update(detail_text(grid, host, seq))
        self.query_one("#hosts-task-list", Static).update(tasks_text(grid, seq))

    def _show_fit(self) -> None:
        """Say how many hosts and tasks are out of view, when some are."""
        grid = self.grid
        fit = self.query_one("#hosts-fit", Static)
        if grid is None or grid.empty:
            fit.update(Text(""))
            return
        table = self.table
        rows = max(table.scrollable_content_region.height - 1, 0)
        top = int(table.scroll_y)
        hosts = len(grid.hosts)
        parts = []
        if rows and hosts > rows:
            shown_to = min(top + rows, hosts)
            parts.append(f"hosts {top + 1}-{shown_to} of {hosts}")
        width = table.scrollable_content_region.width
        fixed = sum(c.get_render_width(table) for c in table.ordered_columns[:2])
        per = table.ordered_columns[2].get_render_width(table) if len(table.columns) > 2 else 1
        room = max((width - fixed) // max(per, 1), 1)
        tasks = len(grid.tasks)
        if tasks > room:
            first = int(table.scroll_x) // max(per, 1)
            last = min(first + room, tasks)
            parts.append(
                f"tasks {grid.tasks[first].seq + 1}-{grid.tasks[last - 1].seq + 1} of {tasks}"
            )
        text = Text("  ".join(parts) + ("  (arrows scroll)" if parts else ""), style="dim")
        fit.update(text)
        fit.display = bool(parts)
