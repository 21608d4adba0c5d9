"""A table of jobs keyed by job id: rows are updated in place, never reloaded.

Three kinds share it: the queue (claim order), running (oldest first, with a progress bar)
and history (newest first, coloured by final state). Cells are plain ``Text``: job data is
never read as markup, and unsafe characters in it are shown escaped. Every column has a
fixed width, so nothing jumps sideways as jobs come, go and progress; longer text is cut
with an ellipsis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from opsconsole.core.states import FINAL, PENDING, JobState
from opsconsole.core.text import STATE_STYLES, ago, duration, visible
from opsconsole.core.views import JobView

S = JobState
HISTORY_MAX = 1000
"""Rows kept in the history table: a window of the history that moves as the cursor does.
Rows that leave it are fetched again by keyset when the cursor comes back."""
REBUILD_OVER = 20
"""Dropping more rows than this rebuilds the table instead: Textual's ``remove_row`` renumbers
every row, so dropping a page one row at a time took 0.6 s with 2,000 rows."""
NEAR = 5
"""Rows from either end of the window at which history asks for the next page."""

COLUMNS: dict[str, list[tuple[str, str, int]]] = {
    "queue": [
        ("id", "ID", 6),
        ("template", "TEMPLATE", 16),
        ("state", "STATE", 9),
        ("pri", "PRI", 3),
        ("when", "WHEN", 16),
        ("params", "PARAMS", 30),
    ],
    "running": [
        ("id", "ID", 6),
        ("template", "TEMPLATE", 14),
        ("params", "PARAMS", 14),
        ("worker", "WORKER", 10),
        ("elapsed", "ELAPSED", 7),
        ("progress", "PROGRESS", 30),
    ],
    "history": [
        ("id", "ID", 6),
        ("template", "TEMPLATE", 16),
        ("state", "STATE", 11),
        ("finished", "FINISHED", 9),
        ("duration", "DURATION", 9),
        ("exit", "EXIT", 4),
    ],
}
"""Per kind: (key, header, width in cells); the widths fill a wide screen's left column."""
NARROW_WIDTHS: dict[str, dict[str, int]] = {
    "queue": {"template": 14, "when": 13, "params": 19},
    "running": {"template": 12, "params": 12, "worker": 9, "progress": 18},
    "history": {"template": 14},
}
"""What changes on a narrow terminal, so that one pane's columns fit 80 columns."""
FINISHED = [key for key, _, _ in COLUMNS["history"]].index("finished")
QUEUE_STATE = {"awaiting_approval": "approval"}
"""Shorter words for the queue's STATE column (its WHEN column says what is awaited)."""


class Cell(Text):
    """A cell's text, drawn exactly as ``Text``, that Textual does not measure.

    Every column has a fixed width, yet ``DataTable`` measures each new or changed cell to
    size auto-width columns (a quarter of a millisecond per cell on a loaded machine: a
    200-row page of history cost 60 ms of measuring for nothing). Without a
    ``__rich_measure__`` the measure is skipped; rendering is ``Text``'s own.
    """

    __slots__ = ()
    __rich_measure__ = None  # type: ignore[assignment]


def as_cell(text: Text) -> Cell:
    text.__class__ = Cell  # same slots: the object becomes a Cell as it is
    return text  # type: ignore[return-value]


def fit(text: Text, width: int) -> Text:
    """``text`` cut to ``width`` cells, the cut marked with an ellipsis."""
    if text.cell_len <= width:
        return text
    text = text.copy()
    text.truncate(width - 1)
    text.append("…")
    return text


def key_params(view: JobView, width: int = 32) -> str:
    """The parameters as k=v (secrets are already ***), cut to ``width``."""
    text = " ".join(f"{k}={_short(v)}" for k, v in view.params.items() if v not in (None, "", []))
    text = visible(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _short(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def progress_bar(
    percent: int | None, step: str | None, width: int = 10, *, cancelling: bool = False
) -> Text:
    pct = max(0, min(100, percent or 0))
    filled = round(width * pct / 100)
    t = Text()  # no base style: it would colour the whole cell, not just the filled part
    t.append("█" * filled, style="green")
    t.append("░" * (width - filled), style="dim")
    t.append(f" {pct:>3}%")
    if cancelling:
        t.append(" cancelling", style="bold red")
    elif step:
        t.append(" " + visible(step, strip_sequences=True)[:24])
    return t


class JobTable(DataTable[Any]):
    """One pane's table. ``upsert`` applies changed jobs; rows keep their identity."""

    class Selected(Message):
        def __init__(self, table: JobTable, job_id: str | None) -> None:
            super().__init__()
            self.table = table
            self.job_id = job_id

    class NearEnd(Message):
        """The cursor reached the last loaded rows: history loads its next page."""

        def __init__(self, table: JobTable) -> None:
            super().__init__()
            self.table = table

    class NearTop(Message):
        """The cursor reached the first rows of a window cut above: the newer rows load."""

        def __init__(self, table: JobTable) -> None:
            super().__init__()
            self.table = table

    class Jumped(Message):
        """Home or End in history, whose far end is not loaded: that end loads instead."""

        def __init__(self, table: JobTable, *, to_end: bool) -> None:
            super().__init__()
            self.table = table
            self.to_end = to_end

    def __init__(
        self, kind: str, *, clock: Callable[[], datetime] | None = None, **kw: Any
    ) -> None:
        # without the focus the cursor row keeps its cells' colours (a failed job stays red):
        # only the focused table's cursor paints its row
        super().__init__(
            cursor_type="row",
            zebra_stripes=False,
            cursor_foreground_priority="renderable",
            **kw,
        )
        self.kind = kind
        self.clock = clock or (lambda: datetime.now(UTC))
        self.views: dict[str, JobView] = {}
        self._cells: dict[str, tuple[Any, ...]] = {}
        self.filter_text = ""
        self.narrow = False
        self.filtered_out: dict[str, JobView] = {}
        """Rows the filter hides, kept so clearing the filter restores them."""
        self.approvals: dict[str, tuple[int, int]] = {}
        """Per job awaiting approval: (approvals given, approvals required)."""
        self.more_above = False
        """History only: newer jobs exist above the first row (the window was cut there, or
        jumped to the far end); jobs finishing now are not shown until Home comes back."""
        self.more_below = False
        """History only: older jobs exist below the last row (a page came back full)."""

    def on_mount(self) -> None:
        self._add_columns()

    def on_focus(self) -> None:
        self.cursor_foreground_priority = "css"

    def on_blur(self) -> None:
        self.cursor_foreground_priority = "renderable"

    def widths(self) -> dict[str, int]:
        narrow = NARROW_WIDTHS[self.kind] if self.narrow else {}
        return {key: narrow.get(key, width) for key, _, width in COLUMNS[self.kind]}

    def _add_columns(self) -> None:
        widths = self.widths()
        for key, label, _ in COLUMNS[self.kind]:
            self.add_column(label, key=key, width=widths[key])

    def set_narrow(self, narrow: bool) -> None:
        """Take the narrow (or wide) column widths: the rows are laid out again, once."""
        if narrow == self.narrow:
            return
        self.narrow = narrow
        if not self.is_mounted:
            return
        selected = self.selected_id
        views = list(self.views.values())
        self.clear(columns=True)
        self.views.clear()
        self._cells.clear()
        self._add_columns()
        self.upsert(views)
        if selected in self.views:
            self.move_cursor(row=self.get_row_index(selected), scroll=True)

    # -- content ----------------------------------------------------------------------

    def accepts(self, view: JobView) -> bool:
        if self.kind == "queue":
            return view.state in PENDING
        if self.kind == "running":
            return view.state == S.RUNNING
        return view.state in FINAL

    def cells(self, v: JobView) -> tuple[Any, ...]:
        # the id cell stays whole: sorting reads the job id back from it
        widths = self.widths()
        return tuple(
            as_cell(cell if key == "id" else fit(cell, widths[key]))
            for cell, key in zip(self._cells_of(v), widths, strict=True)
        )

    def _cells_of(self, v: JobView) -> tuple[Text, ...]:
        now = self.clock()
        state = Text(v.state.value, style=STATE_STYLES.get(v.state.value, ""))
        if self.kind == "queue":
            if v.state == S.SCHEDULED:
                when = ago(v.run_at, now)
            elif v.state == S.WAITING:
                when = "after " + visible(",".join(v.depends_on))
            elif v.state == S.AWAITING_APPROVAL:
                given = self.approvals.get(v.id)
                when = f"{given[0]}/{given[1]} approvals" if given else "needs approval"
            else:
                when = f"queued {ago(v.created_at, now)}"
            state.plain = QUEUE_STATE.get(v.state.value, v.state.value)
            if v.frozen:  # the row says why it waits: STATE frozen, WHEN the reason and end
                state = Text("frozen", style="bold red")
                when = visible(v.frozen.removeprefix("frozen: "))
            return (
                Text(v.id),
                Text(visible(v.template)),
                state,
                Text(str(v.priority)),
                Text(when),
                Text(key_params(v)),
            )
        if self.kind == "running":
            elapsed = (now - v.started_at).total_seconds() if v.started_at else None
            return (
                Text(v.id),
                Text(visible(v.template)),
                Text(key_params(v, 20)),
                Text(visible((v.worker or "-").rsplit(":", 1)[0])),
                Text(duration(elapsed)),
                progress_bar(v.progress, v.step, cancelling=v.cancel_requested),
            )
        return (
            Text(v.id),
            Text(visible(v.template)),
            state,
            Text(ago(v.finished_at, now)),
            Text(duration(v.duration_s)),
            Text("" if v.exit_code is None else str(v.exit_code)),
        )

    def _matches(self, v: JobView) -> bool:
        if not self.filter_text:
            return True
        words = [v.id, v.template, v.state.value, v.team or "", " ".join(v.tags)]
        hay = " ".join([*words, key_params(v, 500)])
        return all(word in hay.lower() for word in self.filter_text.lower().split())

    def sort_key(self, v: JobView) -> tuple[Any, ...]:
        if self.kind == "queue":
            return (-v.priority, v.created_at, v.id)
        if self.kind == "running":
            # as ``running_rows`` orders them: jobs one claim started together keep the
            # order they were claimed in
            return (v.started_at or v.created_at, -v.priority, v.created_at, v.id)
        # history: newest first
        return (-(v.finished_at or v.created_at).timestamp(), v.id)

    def upsert(self, views: Iterable[JobView]) -> None:
        """Apply changed jobs: update cells in place, add new rows, drop rows that left."""
        self._apply(views)
        if self.kind == "history" and len(self.views) > HISTORY_MAX:
            self.trim(keep_top=True)

    def add_page(self, views: list[JobView], *, above: bool, more: bool) -> None:
        """A page of history beside the window: newer rows ``above`` it or older ones below;
        ``more``: the store has more beyond this page. The side away from the page is cut
        so the window keeps ``HISTORY_MAX`` rows around the cursor, and the rows on screen
        stay where they were."""
        before = len(self.views)
        if above:
            self.more_above = False  # let the newer rows in
            self._apply(views)
            self.more_above = more
            self._scroll_to_row(self.scroll_y + len(self.views) - before)
        else:
            self._apply(views)
            self.more_below = more
        self.trim(keep_top=above)
        # keys that came while the page was read may have left the cursor at the new end
        # already: no cursor move would ask again
        self.call_after_refresh(self.ask_for_more)

    def _scroll_to_row(self, y: float) -> None:
        """Scroll to ``y`` once the next layout knows the new row count: rows came or left
        above the screen, and the rows on it stay where they were."""
        self.call_after_refresh(self.scroll_to, y=max(0, y), animate=False, force=True)

    def _apply(self, views: Iterable[JobView]) -> None:
        selected = self.selected_id
        reorder = False
        for v in views:
            known = v.id in self.views or v.id in self.filtered_out
            if not self.accepts(v):
                if known:
                    self._drop(v.id)
                continue
            if self.kind == "history" and self.more_above and not known:
                continue  # newer than the window's first row: it belongs above the cut
            if not self._matches(v):
                if v.id in self.views:
                    self._drop(v.id)
                self.filtered_out[v.id] = v
                continue
            self.filtered_out.pop(v.id, None)
            old = self.views.get(v.id)
            self.views[v.id] = v
            new_cells = self.cells(v)
            if old is None:
                self.add_row(*new_cells, key=v.id)
                reorder = True
            else:
                if self.sort_key(old) != self.sort_key(v):
                    reorder = True
                prev = self._cells.get(v.id, ())
                for (col, _, _), cell, before in zip(
                    COLUMNS[self.kind], new_cells, prev, strict=False
                ):
                    if cell != before:
                        self.update_cell(v.id, col, cell)
            self._cells[v.id] = new_cells
        if reorder:
            self._resort(selected)

    def trim(self, *, keep_top: bool) -> None:
        """Cut the history window to ``HISTORY_MAX`` rows, keeping its top (newest) rows or
        its bottom ones, and remember that the store has more on the side that was cut."""
        order = sorted(self.views, key=lambda j: self.sort_key(self.views[j]))
        excess = len(order) - HISTORY_MAX
        if excess <= 0:
            return
        y = self.scroll_y
        if keep_top:
            gone, kept = order[HISTORY_MAX:], order[:HISTORY_MAX]
            self.more_below = True
        else:
            gone, kept = order[:excess], order[excess:]
            self.more_above = True
        if len(gone) <= REBUILD_OVER:
            for job_id in gone:
                self._drop(job_id)
        else:
            self.replace([self.views[j] for j in kept], keep_cursor=True)
        if not keep_top:
            self._scroll_to_row(y - excess)

    def replace(self, views: list[JobView], *, keep_cursor: bool = False) -> None:
        """Show exactly ``views`` (a page of history): the table is built again in one go,
        in order, which costs a page of rows instead of a renumbering per dropped row."""
        selected = self.selected_id if keep_cursor else None
        old_views, old_cells = self.views, self._cells
        self.clear()
        self.views, self._cells = {}, {}
        self.filtered_out.clear()
        for v in sorted(views, key=self.sort_key):
            if not self.accepts(v):
                continue
            if not self._matches(v):
                self.filtered_out[v.id] = v
                continue
            cells = old_cells[v.id] if old_views.get(v.id) is v else self.cells(v)
            self.views[v.id] = v
            self._cells[v.id] = cells
            self.add_row(*cells, key=v.id)
        if selected in self.views:
            self.move_cursor(row=self.get_row_index(selected), scroll=False)

    def _drop(self, job_id: str) -> None:
        self.filtered_out.pop(job_id, None)
        if job_id in self.views:
            del self.views[job_id]
            self._cells.pop(job_id, None)
            self.remove_row(job_id)

    def _resort(self, selected: str | None) -> None:
        self.sort("id", key=lambda cell: self.sort_key(self.views[cell.plain]))
        if selected and selected in self.views:
            self.move_cursor(row=self.get_row_index(selected), scroll=False)

    def refresh_times(self) -> None:
        """Relative times ('in 4m', elapsed) move on even when no job changes.

        History's only moving cell is FINISHED: that one is worked out per row (a string),
        and only the cells whose text changed are replaced. Building every cell of a
        thousand-row window every two seconds cost the UI tens of milliseconds a tick."""
        if self.kind != "history":
            self.upsert(list(self.views.values()))
            return
        now = self.clock()
        width = self.widths()["finished"]
        for job_id, v in self.views.items():
            old = self._cells.get(job_id)
            if old is None:
                continue
            text = ago(v.finished_at, now)
            if old[FINISHED].plain == text:
                continue
            cell = as_cell(fit(Text(text), width))
            self._cells[job_id] = (*old[:FINISHED], cell, *old[FINISHED + 1 :])
            self.update_cell(job_id, "finished", cell)

    def set_approvals(self, given: dict[str, tuple[int, int]]) -> None:
        """How far each gated job is (approvals given of required): its WHEN cell says it."""
        if given == self.approvals:
            return
        self.approvals = given
        self.upsert([v for v in self.views.values() if v.state == S.AWAITING_APPROVAL])

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        everything = [*self.views.values(), *self.filtered_out.values()]
        self.filtered_out.clear()
        for job_id in list(self.views):
            self._drop(job_id)
        self.upsert(everything)

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return str(key.value) if key.value is not None else None

    def oldest_finished(self) -> tuple[datetime, str] | None:
        """The keyset cursor of the last loaded history row."""
        if not self.views:
            return None
        last = min(self.views.values(), key=lambda v: (v.finished_at or v.created_at, v.id))
        return (last.finished_at or last.created_at, last.id)

    def newest_finished(self) -> tuple[datetime, str] | None:
        """The keyset cursor of the first loaded history row."""
        if not self.views:
            return None
        first = max(self.views.values(), key=lambda v: (v.finished_at or v.created_at, v.id))
        return (first.finished_at or first.created_at, first.id)

    # -- keys: Home and End go to the first and last job (every column fits: nothing
    # scrolls sideways); Ctrl+Home and Ctrl+End stay Textual's: the loaded rows' ends --------

    def action_scroll_home(self) -> None:
        if self.kind == "history" and self.more_above:
            self.post_message(self.Jumped(self, to_end=False))
            return
        self.action_scroll_top()

    def action_scroll_end(self) -> None:
        if self.kind == "history" and self.more_below:
            self.post_message(self.Jumped(self, to_end=True))
            return
        self.action_scroll_bottom()

    # -- events -------------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        # where the cursor is now: a rebuilt window highlights its first row on the way
        job_id = self.selected_id
        self.post_message(self.Selected(self, job_id))
        self.ask_for_more()

    def ask_for_more(self) -> None:
        """History: the cursor is near an end of the window that the store goes beyond."""
        if self.kind != "history" or not self.row_count:
            return
        if self.cursor_row >= self.row_count - NEAR:
            self.post_message(self.NearEnd(self))
        elif self.cursor_row < NEAR and self.more_above:
            self.post_message(self.NearTop(self))
