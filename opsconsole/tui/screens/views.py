"""Locks, workers, events and stats: the views behind ``L``, ``W``, ``E``, ``S`` and ``:``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from opsconsole.core.text import STATE_STYLES, ago, duration, visible
from opsconsole.core.views import EventView, LockView, StatsView, WorkerView
from opsconsole.tui.screens.dialogs import PromptScreen

if TYPE_CHECKING:
    from opsconsole.tui.app import OpsConsole

SPARK = {
    "succeeded": ("▇", "green"),
    "partial": ("▅", "yellow"),
    "failed": ("▁", "red"),
    "timed_out": ("▁", "red"),
    "cancelled": ("▂", "dim"),
    "interrupted": ("▁", "red"),
    "rejected": ("▂", "dim"),
}


class TableView(Screen[None]):
    """A full-screen table refreshed from the feed's messages (no timers of its own)."""

    TITLE = ""
    COLUMNS: tuple[str, ...] = ()
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]
    DETAIL = ""
    """The name of the selected row's detail pane under the table (a scroll ``NAME-pane``
    holding ``NAME-detail``); empty: the table alone."""
    DETAIL_FIRST = ""
    """What the detail pane says before the first read has answered."""

    @property
    def ops(self) -> OpsConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical(classes="view"):
            yield Static(Text(self.TITLE, style="bold"), classes="view-title")
            yield DataTable(id="view-table", cursor_type="row")
            if self.DETAIL:
                with VerticalScroll(id=f"{self.DETAIL}-pane"):
                    yield Static(Text(self.DETAIL_FIRST, style="dim"), id=f"{self.DETAIL}-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.table.add_columns(*self.COLUMNS)
        self.reload()

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#view-table", DataTable)

    def reload(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def on_feed_tick(self) -> None:
        """Called by the app when the store changed."""
        self.reload()


class LocksScreen(TableView):
    TITLE = "Locks: concurrency keys in use (holders, then waiters in the order they get it)"
    COLUMNS = ("KEY", "LIMIT", "HELD BY", "SINCE", "WAITING (in order)")

    def reload(self) -> None:
        self.ops.call("locks", self.ops.service.locks, self.show, group="view")

    def show(self, locks: list[LockView]) -> None:
        now = self.ops.service.now()
        self.table.clear()
        for lk in locks:
            holders = ", ".join(f"{h.job} ({h.template})" for h in lk.holders) or "-"
            self.table.add_row(
                Text(visible(lk.key)),
                Text(str(lk.limit)),
                Text(visible(holders)),
                Text(ago(lk.since, now) if lk.since else "-"),
                Text(visible(" ".join(lk.waiting)) or "-"),
            )
        if not locks:
            self.table.add_row(Text("no concurrency key is in use", style="dim"), "", "", "", "")


class WorkersScreen(TableView):
    TITLE = "Workers (r: resize the selected worker)"
    COLUMNS = ("WORKER", "HOST", "PID", "SLOTS", "BUSY", "STATE", "HEARTBEAT", "PROBLEM")
    BINDINGS = [*TableView.BINDINGS, Binding("r", "resize", "Resize")]

    def __init__(self) -> None:
        super().__init__()
        self.worker_list: list[WorkerView] = []

    def reload(self) -> None:
        self.ops.call(
            "workers",
            lambda: self.ops.service.workers(include_stopped=False),
            self.show,
            group="view",
        )

    def show(self, workers: list[WorkerView]) -> None:
        now = self.ops.service.now()
        self.worker_list = workers
        row = self.table.cursor_row
        self.table.clear()
        for w in workers:
            slots = str(w.slots) if w.slots == w.desired_slots else f"{w.slots}→{w.desired_slots}"
            state = w.state if w.alive else f"{w.state} (no heartbeat)"
            if w.alive and w.problem:
                state = "unhealthy"
            self.table.add_row(
                Text(visible(w.id)),
                Text(visible(w.host)),
                Text(str(w.pid)),
                Text(slots),
                Text(str(w.busy)),
                Text(state, style="green" if w.healthy else "red"),
                Text(ago(w.heartbeat_at, now)),
                Text(visible(w.problem or "")),
                key=w.id,
            )
        if workers:
            self.table.move_cursor(row=min(row, len(workers) - 1))

    def action_resize(self) -> None:
        if not self.worker_list:
            return
        worker = self.worker_list[self.table.cursor_row]

        def answer(value: str | None) -> None:
            if value is None:
                return
            try:
                slots = int(value)
            except ValueError:
                self.ops.notify(
                    visible(f"not a number: {value[:20]}"), severity="error", markup=False
                )
                return
            self.ops.call(
                "resize",
                lambda: self.ops.service.resize_worker(worker.id, slots),
                lambda _w: self.reload(),
            )

        self.app.push_screen(
            PromptScreen(f"Slots for {worker.id}", value=str(worker.slots)), answer
        )


class EventsScreen(Screen[None]):
    """The live event stream of every job, what `opsconsole events --follow` prints."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("slash", "focus_filter", "Filter"),
    ]
    MAX_ROWS = 2000

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""
        self.event_list: list[EventView] = []

    @property
    def ops(self) -> OpsConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical(classes="view"):
            yield Static(Text("Events (live)", style="bold"), classes="view-title")
            yield Input(
                placeholder="filter: job id, template word, event kind, actor…", id="events-filter"
            )
            yield DataTable(id="events-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        t = self.query_one("#events-table", DataTable)
        t.add_columns("WHEN", "JOB", "EVENT", "STATE", "BY", "MESSAGE")
        self.ops.call("events", lambda: self.ops.service.recent_events(200), self.add_events)
        t.focus()

    def _match(self, e: EventView) -> bool:
        if not self.filter_text:
            return True
        hay = f"{e.job_id} {e.kind} {e.state or ''} {e.actor} {e.message}".lower()
        return all(w in hay for w in self.filter_text.lower().split())

    def add_events(self, events: list[EventView]) -> None:
        t = self.query_one("#events-table", DataTable)
        self.event_list.extend(events)
        del self.event_list[: -self.MAX_ROWS]
        for e in events:
            if self._match(e):
                self._add_row(t, e)
        while t.row_count > self.MAX_ROWS:
            t.remove_row(next(iter(t.rows)))
        t.move_cursor(row=t.row_count - 1)

    @staticmethod
    def _add_row(t: DataTable[Any], e: EventView) -> None:
        t.add_row(
            Text(f"{e.ts:%H:%M:%S}"),
            Text(visible(e.job_id)),
            Text(e.kind),
            Text(e.state or "", style=STATE_STYLES.get(e.state or "", "")),
            Text(visible(e.actor)),
            Text(visible(e.message)[:200]),
        )

    @on(Input.Changed, "#events-filter")
    def _filter(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        t = self.query_one("#events-table", DataTable)
        t.clear()
        for e in self.event_list:
            if self._match(e):
                self._add_row(t, e)

    def action_focus_filter(self) -> None:
        self.query_one("#events-filter", Input).focus()


class StatsScreen(TableView):
    TITLE = "Statistics per template (recent outcomes on the right, oldest first)"
    COLUMNS = ("TEMPLATE", "RUNS", "OK", "FAILED", "SUCCESS", "P50", "P95", "RECENT")

    def reload(self) -> None:
        self.ops.call("stats", lambda: self.ops.service.stats(None), self.show, group="view")

    def show(self, stats: StatsView) -> None:
        self.table.clear()
        counts = "  ".join(f"{k} {v}" for k, v in stats.counts.items() if v)
        self.query_one(".view-title", Static).update(
            Text(f"{self.TITLE}\n{counts or 'no jobs yet'}", style="bold")
        )
        for t in stats.templates:
            spark = Text()
            for s in t.recent:
                ch, style = SPARK.get(s, ("?", ""))
                spark.append(ch, style=style)
            rate = "-" if t.success_rate is None else f"{t.success_rate * 100:.0f}%"
            self.table.add_row(
                Text(visible(t.template)),
                Text(str(t.runs)),
                Text(str(t.succeeded)),
                Text(str(t.failed)),
                Text(rate),
                Text(duration(t.p50_s)),
                Text(duration(t.p95_s)),
                spark,
            )
