"""The schedules view (``D``, ``:schedules``): when each schedule fires next, what it last
ran, and for the selected one its next five fire times and its ledger.

The same reads as ``opsconsole schedules list`` / ``show`` (``OpsService.schedules`` and
``OpsService.schedule``), in thread workers, refreshed by the feed's messages: a batch of
events reloads it, and the feed's counts tick redraws the relative times (reading the store
again only when a schedule has come due, so a fire that wrote no event still shows). The
keys act on the selected schedule through the same service methods as the CLI's
``pause``, ``resume``, ``run``, ``run-missed`` and ``skip-to-now``; the two that change the
ledger in bulk ask first. Nothing here writes to the store itself.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.events import Mount
from textual.widgets import DataTable, Static

from opsconsole.core.errors import NotFound
from opsconsole.core.schedules import FireView, ScheduleDetail, ScheduleView
from opsconsole.core.text import STATE_STYLES, ago, visible
from opsconsole.core.views import JobView
from opsconsole.tui import actions
from opsconsole.tui.screens.dialogs import ConfirmScreen
from opsconsole.tui.screens.job import JobScreen
from opsconsole.tui.screens.views import TableView

FIRE_STYLES = {"fired": "green", "missed": "bold red", "skipped": "yellow"}
"""A ledger row's status: what ran, what did not run and why it matters most."""


def zone_of(view: ScheduleView) -> ZoneInfo:
    """The schedule's zone (UTC for an interval, or a zone this machine does not know)."""
    try:
        return ZoneInfo(view.tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local(ts: datetime, view: ScheduleView, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    """``ts`` as a wall-clock time in the schedule's zone, the zone named: on a fall-back
    day the two 02:30 fires differ only by it (CEST, then CET)."""
    return ts.astimezone(zone_of(view)).strftime(fmt)


def when_text(view: ScheduleView) -> Text:
    """``every 15m`` or the cron expression and its zone."""
    if view.cron:
        text = Text(visible(view.cron))
        text.append(f"  {visible(view.tz)}", style="dim")
    else:
        text = Text(f"every {visible(view.every or '?')}")
    if view.jitter:  # a fire's job starts up to this much later; the ledger keeps the time
        text.append(f" +≤{visible(view.jitter)}", style="dim")
    return text


def next_text(view: ScheduleView, now: datetime) -> Text:
    """In how long, and when on the schedule's wall clock; a due time is called out."""
    if view.paused:
        return Text("paused", style="yellow")
    at = view.next_fire_at
    if at is None:
        return Text("-", style="dim")
    clock = local(
        at, view, "%H:%M %Z" if abs((at - now).total_seconds()) < 86400 else "%m-%d %H:%M %Z"
    )
    if at <= now:
        # a tick fires it within a second where a worker or console runs: still due, none does
        return Text(f"due {ago(at, now)} · {clock}", style="bold yellow")
    return Text(f"{ago(at, now)} · {clock}")


def job_text(job: str | None, state: str | None) -> Text:
    text = Text(job or "-", style="" if job else "dim")
    if state:
        text.append(f" {state}", style=STATE_STYLES.get(state, ""))
    return text


def params_text(params: dict[str, Any]) -> str:
    """``k=v`` pairs, a list or number as JSON (secret values come masked from the service)."""

    def value(v: Any) -> str:
        return visible(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))

    return "  ".join(f"{visible(k)}={value(v)}" for k, v in params.items()) or "(none)"


def schedule_facts(view: ScheduleView, now: datetime) -> Table:
    """The selected schedule: what it runs, how it fires, its policies."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    state = Text("paused", style="bold yellow") if view.paused else Text("active", style="green")
    grid.add_row("Schedule", Text(visible(view.name), style="bold") + Text("  ") + state)
    grid.add_row("Runs", Text(f"{visible(view.template)}  {params_text(view.params)}"))
    grid.add_row("When", when_text(view))
    grid.add_row(
        "Policies",
        Text(f"catch-up {view.catchup} · overlap {view.overlap}"),
    )
    origin = (
        "declared by its template" if view.origin == "template" else f"added by {view.created_by}"
    )
    grid.add_row("Origin", Text(visible(origin)))
    if view.last_fire_at is not None:
        grid.add_row(
            "Last fire",
            Text(f"{local(view.last_fire_at, view)} ({ago(view.last_fire_at, now)})  ")
            + job_text(view.last_job, view.last_job_state),
        )
    return grid


def next_fires(detail: ScheduleDetail, now: datetime) -> Text:
    """The next five fire times in the schedule's zone (a paused one's: after a resume)."""
    view = detail.view
    text = Text()
    if view.paused:
        text.append("paused: these once p resumes it\n", style="yellow")
    if not detail.next_fires:
        return text + Text("none", style="dim")
    for i, at in enumerate(detail.next_fires):
        if i:
            text.append("\n")
        text.append(local(at, view, "%a %Y-%m-%d %H:%M %Z"))
        text.append(f"  {ago(at, now)}", style="dim")
    return text


def ledger_table(view: ScheduleView, fires: list[FireView]) -> Table:
    """Every fire time, newest first: fired (with its job), missed or skipped, and why."""
    table = Table(
        box=None,
        padding=(0, 2, 0, 0),
        show_edge=False,
        header_style="bold dim",
        title="Ledger (newest first)",
        title_justify="left",
        title_style="bold",
    )
    table.add_column("FIRE TIME", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("JOB", no_wrap=True)
    table.add_column("REASON", overflow="fold")
    for f in fires:
        reason = f.reason or (f"by {f.actor}" if f.actor else "")
        table.add_row(
            Text(local(f.fire_at, view)),
            Text(f.status, style=FIRE_STYLES.get(f.status, "")),
            job_text(f.job_id, f.job_state),
            Text(visible(reason)),
        )
    return table


def schedule_detail(detail: ScheduleDetail, now: datetime) -> Group:
    """The facts beside the next five fire times; the ledger under both."""
    top = Table.grid(padding=(0, 4))
    top.add_column(overflow="fold")
    top.add_column(no_wrap=True)
    top.add_row(
        schedule_facts(detail.view, now),
        Text("Next fires\n", style="bold") + next_fires(detail, now),
    )
    ledger: Any = (
        ledger_table(detail.view, detail.ledger)
        if detail.ledger
        else Text("Ledger: no fire time has passed yet", style="dim")
    )
    return Group(top, Text(""), ledger)


class SchedulesScreen(TableView):
    """Every schedule, live; the selected one's next fire times and ledger below."""

    TITLE = "Schedules: when each fires, what it last ran, the ledger of every fire time"
    COLUMNS = ("SCHEDULE", "NEXT FIRE", "LAST JOB", "WHEN", "TEMPLATE", "STATE")
    DETAIL = "schedule"
    DETAIL_FIRST = "loading…"
    BINDINGS = [*TableView.BINDINGS, *actions.view_bindings(actions.SCHEDULE_ACTIONS)]
    PALETTE = actions.SCHEDULE_ACTIONS
    """The keys the command palette offers while this view is in front."""

    def __init__(self) -> None:
        super().__init__()
        self.views: dict[str, ScheduleView] = {}
        self.detail: ScheduleDetail | None = None
        self.due_seen: set[tuple[str, datetime]] = set()
        """Due times already read again once (a due schedule no process fires stays due)."""
        self.loading = False
        self.stale = False
        """Events arrived while a read was under way: read once more when it is done."""

    def on_mount(self, event: Mount) -> None:
        """Columns keyed by name (the ticks redraw NEXT FIRE in place), instead of
        ``TableView``'s unkeyed ones."""
        event.prevent_default()
        for column in self.COLUMNS:
            self.table.add_column(column, key=column)
        self.reload()

    # -- reads ----------------------------------------------------------------------------

    def reload(self) -> None:
        svc = self.ops.service
        wanted = self.selected

        def load() -> tuple[list[ScheduleView], ScheduleDetail | None]:
            views = svc.schedules()
            names = [v.name for v in views]
            pick = wanted if wanted in names else (names[0] if names else None)
            if pick is None:
                return views, None
            try:
                return views, svc.schedule(pick)
            except NotFound:  # removed between the two reads: the next tick shows it gone
                return views, None

        self.loading = True
        self.ops.call("schedules", load, self.show, on_error=self._not_read, group="view")

    def _not_read(self, message: str) -> None:
        self.loading = False  # the app has said why in a notification

    def on_feed_tick(self) -> None:
        """A batch of events: read again, one read at a time (a busy store sends a batch
        every fraction of a second; the batches that come meanwhile make one more read)."""
        if self.loading:
            self.stale = True
            return
        self.reload()

    def show(self, got: tuple[list[ScheduleView], ScheduleDetail | None]) -> None:
        self.loading = False
        if self.stale:
            self.stale = False
            self.reload()
        views, detail = got
        now = self.ops.service.now()
        selected = self.selected
        self.views = {v.name: v for v in views}
        self.table.clear()
        for v in views:
            self.table.add_row(
                Text(visible(v.name), style="bold"),
                next_text(v, now),
                job_text(v.last_job, v.last_job_state),
                when_text(v),
                Text(visible(v.template)),
                Text("paused", style="bold yellow") if v.paused else Text("active", style="green"),
                key=v.name,
            )
        if not views:
            self.table.add_row(
                Text("no schedule yet: opsconsole schedules add NAME ...", style="dim"),
                *[""] * (len(self.COLUMNS) - 1),
            )
        target = selected if selected in self.views else (detail.view.name if detail else None)
        if target in self.views:
            self.table.move_cursor(row=self.table.get_row_index(target))
        if detail is not None and detail.view.name == self.selected:
            self.detail = detail
        elif self.detail is not None and self.detail.view.name not in self.views:
            self.detail = None
        self.describe()
        self.refresh_bindings()

    @property
    def selected(self) -> str | None:
        """The cursor row's schedule (None on the empty placeholder)."""
        if not self.is_mounted or not self.table.row_count:
            return None
        key = self.table.coordinate_to_cell_key(self.table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    @property
    def selected_view(self) -> ScheduleView | None:
        return self.views.get(self.selected or "")

    @on(DataTable.RowHighlighted, "#view-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.refresh_bindings()
        name = self.selected
        if name is None or (self.detail is not None and self.detail.view.name == name):
            return
        self.describe()  # the row's own facts at once; its ledger when read
        svc = self.ops.service
        self.ops.call(
            "schedule", lambda: svc.schedule(name), self._detail_read, group="schedule-detail"
        )

    def _detail_read(self, detail: ScheduleDetail) -> None:
        if detail.view.name == self.selected:
            self.detail = detail
            self.describe()

    def describe(self) -> None:
        """The selected schedule's detail, from what was read (no I/O here)."""
        pane = self.query_one("#schedule-detail", Static)
        now = self.ops.service.now()
        view = self.selected_view
        if view is None:
            pane.update(Text("no schedule selected", style="dim"))
        elif self.detail is None or self.detail.view.name != view.name:
            pane.update(schedule_facts(view, now))
        else:
            pane.update(schedule_detail(self.detail, now))

    def on_counts_tick(self) -> None:
        """The feed's periodic tick: relative times move on; a schedule that came due is
        read again once (its fire, or its missed fire, may have written no event)."""
        now = self.ops.service.now()
        due = {
            (v.name, v.next_fire_at)
            for v in self.views.values()
            if not v.paused and v.next_fire_at is not None and v.next_fire_at <= now
        }
        if due - self.due_seen:
            self.due_seen |= due
            self.reload()
            return
        for name, view in self.views.items():
            self.table.update_cell(name, "NEXT FIRE", next_text(view, now))
        self.describe()

    # -- keys -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A schedule key is offered only when it applies to the selected schedule."""
        if action not in actions.SCHEDULE_NAMES:
            return True
        return self.refusal(action) is None

    def refusal(self, action: str) -> str | None:
        """Why ``action`` cannot act on the selected schedule now, or None if it can."""
        view = self.selected_view
        if view is None:
            return "no schedule selected"
        if action == "pause" and view.paused:
            return f"{view.name} is already paused: p resumes it"
        if action == "resume" and not view.paused:
            return f"{view.name} is not paused"
        if action == "last_job" and not view.last_job:
            return f"{view.name} has not fired a job yet"
        return None

    async def attempt(self, action: str) -> None:
        """Run one of this view's keys from the command palette; one that cannot apply
        says why."""
        if not await self.run_action(action):
            self.action_refused(action)

    def action_refused(self, action: str) -> None:
        reason = self.refusal(action)
        if reason is not None:
            self.notify(visible(reason), severity="warning", markup=False)

    def _then(self, message: str) -> None:
        self.notify(visible(message), markup=False, timeout=8)
        self.ops.feed.poke()
        self.reload()

    def action_pause(self) -> None:
        name = self.selected
        if name is None:
            return
        self.ops.call(
            "pause",
            lambda: self.ops.service.pause_schedule(name),
            lambda _got: self._then(
                f"paused {name}: its fire times are recorded missed (paused) until p resumes it"
            ),
        )

    def action_resume(self) -> None:
        name = self.selected
        if name is None:
            return
        self.ops.call(
            "resume",
            lambda: self.ops.service.resume_schedule(name),
            lambda _got: self._then(
                f"resumed {name}: the fire times that passed while paused are in its ledger "
                "as missed (m runs them)"
            ),
        )

    def action_run(self) -> None:
        name = self.selected
        if name is None:
            return

        def ran(job: JobView) -> None:
            self._then(f"ran {name} now as job {job.id} ({job.state.value})")

        self.ops.call("run", lambda: self.ops.service.run_schedule(name), ran)

    def action_run_missed(self) -> None:
        view = self.selected_view
        if view is None:
            return
        name = view.name
        missed = [f for f in self.detail.ledger if f.status == "missed"] if self.detail else []
        shown = f" ({len(missed)} in the ledger shown)" if missed else ""

        def ran(jobs: list[JobView]) -> None:
            if not jobs:
                self._then(f"{name} has no missed fire left to run")
                return
            ids = ", ".join(j.id for j in jobs[:8]) + (" …" if len(jobs) > 8 else "")
            self._then(f"ran {len(jobs)} missed fire(s) of {name}: {ids}")

        def answered(yes: bool | None) -> None:
            if yes:
                self.ops.call("run missed", lambda: self.ops.service.run_missed(name), ran)

        self.app.push_screen(
            ConfirmScreen(
                f"Run every missed fire of {name}{shown} now?\n"
                "Each becomes a job; its ledger row turns fired.",
                yes="Run them",
            ),
            answered,
        )

    def action_skip_to_now(self) -> None:
        name = self.selected
        if name is None:
            return

        def skipped(count: int) -> None:
            self._then(f"skipped {count} pending fire time(s) of {name}: it fires from now on")

        def answered(yes: bool | None) -> None:
            if yes:
                self.ops.call("skip to now", lambda: self.ops.service.skip_to_now(name), skipped)

        self.app.push_screen(
            ConfirmScreen(
                f"Skip the fire times of {name} that are already past?\n"
                "They are recorded skipped in its ledger and never run.",
                yes="Skip them",
            ),
            answered,
        )

    def action_last_job(self) -> None:
        view = self.selected_view
        if view is None or not view.last_job:
            self.action_refused("last_job")
            return
        self.app.push_screen(JobScreen(view.last_job))

    @on(DataTable.RowSelected, "#view-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a schedule opens its last job, as Enter on a job opens the job."""
        self.action_last_job()
