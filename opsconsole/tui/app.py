"""The Textual console: live queue, running, history and log tail over OpsService.

Store access happens only in thread workers: the feed (``feed.py``) for everything live,
``call`` for operator actions. A failing call becomes a notification; a failing store a
banner. On the embedded defaults the app also runs a worker pool in this process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from textual import on
from textual.app import App, ComposeResult
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.widgets import Footer, Static, Tab, Tabs
from textual.worker import get_current_worker

from opsconsole.core.approvals import ApprovalRequest
from opsconsole.core.errors import OpsError
from opsconsole.core.service import OpsService
from opsconsole.core.states import LIVE, JobState
from opsconsole.core.text import visible
from opsconsole.core.views import JobView, WorkerView
from opsconsole.tui import actions, banners
from opsconsole.tui.approvals import ApprovalActions
from opsconsole.tui.bulk import BulkActions
from opsconsole.tui.feed import Feed
from opsconsole.tui.history import HISTORY_PAGE, HistoryPages
from opsconsole.tui.log_actions import LogTail
from opsconsole.tui.messages import (
    CountsChanged,
    EventsArrived,
    JobsChanged,
    LogLinesArrived,
    ServiceCallFailed,
    StoreStatus,
)
from opsconsole.tui.screens.catalog import CatalogScreen
from opsconsole.tui.screens.checks import ChecksScreen
from opsconsole.tui.screens.dialogs import PromptScreen, QuitScreen
from opsconsole.tui.screens.help import HelpScreen
from opsconsole.tui.screens.hosts import HostsScreen
from opsconsole.tui.screens.instances import InstancesScreen
from opsconsole.tui.screens.job import JobScreen
from opsconsole.tui.screens.schedules import SchedulesScreen
from opsconsole.tui.screens.views import (
    EventsScreen,
    LocksScreen,
    StatsScreen,
    TableView,
    WorkersScreen,
)
from opsconsole.tui.selection import Selection
from opsconsole.tui.widgets.job_table import JobTable
from opsconsole.tui.widgets.log_pane import LogView
from opsconsole.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from textual.widget import Widget

    from opsconsole.engine.pool import WorkerPool

T = TypeVar("T")
S = JobState
__all__ = ["HISTORY_PAGE", "OpsConsole"]
FIRST_LOAD_LIMIT = 500
"""Rows the queue and running panes read at most (``OpsService.queue`` and ``running``)."""
RELOAD_AFTER = 2.0
"""Seconds between attempts at the first load while the store fails."""
REVIEW_KINDS = frozenset({"break_glass", "review_acked"})
"""Events after which the break-glass banner is looked up again."""
NARROW_WIDTH = 120
NARROW_HEIGHT = 32
PANES = ("queue", "running", "history", "log")
VIEWS = {
    "queue": "pane:queue",
    "running": "pane:running",
    "history": "pane:history",
    "log": "pane:log",
    "locks": "show_locks",
    "workers": "show_workers",
    "events": "show_events",
    "stats": "show_stats",
    "audit": "show_audit",
    "approvals": "show_approvals",
    "schedules": "show_schedules",
    "instances": "show_instances",
    "checks": "show_checks",
    "templates": "show_catalog",
    "help": "help",
}


def live_counts(queue: list[JobView], running: list[JobView]) -> dict[str, int]:
    """The header's live counts from the first load's own rows: exact while a pane is not
    full (a full one is left out until the full count comes, a moment later)."""
    counts: dict[str, int] = {}
    for rows, states in (
        (queue, [s for s in S if s in LIVE and s != S.RUNNING]),
        (running, [S.RUNNING]),
    ):
        if len(rows) >= FIRST_LOAD_LIMIT:
            continue
        for state in states:
            counts[state.value] = 0
        for v in rows:
            counts[v.state.value] = counts.get(v.state.value, 0) + 1
    return counts


class ActionCommands(Provider):
    """Every registry action in the command palette (Ctrl+P), and the keys of the view in
    front (its ``PALETTE``) where that view is the one the palette opened over."""

    def _actions(self) -> list[tuple[actions.Action, Callable[[], Any]]]:
        out = [(a, partial(self.app.attempt, a.name)) for a in actions.ACTIONS]  # type: ignore[attr-defined]
        screen = self.screen
        for a in getattr(screen, "PALETTE", ()):
            out.append((a, partial(screen.attempt, a.name)))  # type: ignore[attr-defined]
        return out

    async def discover(self) -> Hits:
        for a, run in self._actions():
            yield DiscoveryHit(a.description, run, help=f"key {actions.key_label(a.key)}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for a, run in self._actions():
            score = matcher.match(a.description)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(a.description),
                    run,
                    help=f"key {actions.key_label(a.key)}",
                )


class OpsConsole(ApprovalActions, BulkActions, Selection, LogTail, HistoryPages, App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "opsconsole"
    BINDINGS = actions.bindings()
    COMMANDS = App.COMMANDS | {ActionCommands}

    def __init__(
        self,
        service: OpsService,
        *,
        workers: int | None = None,
        embed: bool | None = None,
        start_feed: bool = True,
    ) -> None:
        """``workers``: run an embedded pool of that many slots; ``embed=None`` decides:
        a pool runs when the store is SQLite and no other worker is alive."""
        super().__init__()
        self.service = service
        self.embed = embed
        self.embed_slots = workers
        self.start_feed = start_feed
        self.pool: WorkerPool | None = None
        self.feed = Feed(service, self.post_message)
        self.log_job: str | None = None
        self.quitting = False
        self._active_pane = "queue"
        self.focus_wanted: Widget | None = None
        """A pane widget activated but not focused yet (see ``activate``)."""
        self.history_text = ""
        self.painted = False
        """Set once the first page of every pane is on screen (the benchmark's first paint)."""
        self.ready = False
        """Set once the header's counts are on screen too (tests wait on it)."""

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(self.service.store_description(), id="status")
        yield Static("", id="banner", markup=False)
        yield Static("", id="workers-banner", markup=False)
        yield Static("", id="catalog-banner", markup=False)
        yield Static("", id="review-banner", markup=False)
        yield Static("", id="webhooks-banner", markup=False)
        yield Tabs(
            Tab("Queue", id="t-queue"),
            Tab("Running", id="t-running"),
            Tab("History", id="t-history"),
            Tab("Log", id="t-log"),
            id="tabs",
        )
        with Horizontal(id="board"):
            with Vertical(id="left", classes="-table-active"):
                with Vertical(id="pane-queue", classes="pane -active"):
                    yield JobTable("queue", id="queue", clock=self.service.now)
                with Vertical(id="pane-running", classes="pane"):
                    yield JobTable("running", id="running", clock=self.service.now)
                with Vertical(id="pane-history", classes="pane"):
                    yield JobTable("history", id="history", clock=self.service.now)
            with Vertical(id="pane-log", classes="pane"):
                yield LogView(id="log")
        yield Footer()

    def on_mount(self) -> None:
        titles = {"queue": "Queue", "running": "Running", "history": "History", "log": "Log"}
        for name, title in titles.items():
            self.query_one(f"#pane-{name}").border_title = title
        self._layout(self.size.width, self.size.height)
        self.query_one("#queue", JobTable).focus()
        # the log pane's subtitle says whether it follows and how many lines wait below
        view = self.query_one(LogView)
        self.watch(view, "following", lambda _v: self.update_log_title(), init=False)
        self.watch(view, "new_lines", lambda _v: self.update_log_title(), init=False)
        self._load()

    def _load(self) -> None:
        self.call(
            "load", self._initial_load, self._show_initial, on_error=self._load_failed, quiet=True
        )

    def _load_failed(self, message: str) -> None:
        """The store failed before the feed runs: show the banner and try again."""
        self.post_message(StoreStatus(False, message))
        self.set_timer(RELOAD_AFTER, self._load)

    def on_resize(self, event: Resize) -> None:
        self._layout(event.size.width, event.size.height)

    def _layout(self, width: int, height: int) -> None:
        narrow = width < NARROW_WIDTH or height < NARROW_HEIGHT
        if narrow:
            with contextlib.suppress(Exception):  # not composed yet: compose set them
                self._show_pane(self._active_pane)
        self.screen.set_class(narrow, "narrow")
        for table in self.query(JobTable):
            table.set_narrow(narrow)
        for status in self.query(StatusBar):  # once its new width is known
            status.call_after_refresh(status.render_bar)
        for footer in self.screen.query(Footer):  # none yet on the first layout
            palette = width >= 100
            footer.compact = width < 100
            if footer.show_command_palette != palette:
                footer.show_command_palette = palette
                footer.refresh(recompose=True)  # the footer reads this only as it composes

    # -- workers ----------------------------------------------------------------------------

    def call(
        self,
        action: str,
        fn: Callable[[], T],
        on_ok: Callable[[T], Any] | None = None,
        *,
        on_error: Callable[[str], Any] | None = None,
        quiet: bool = False,
        group: str | None = None,
    ) -> None:
        """Run ``fn`` off the UI thread; results and errors come back on the UI thread."""

        def run() -> None:
            try:
                result = fn()
            except OpsError as exc:
                message = str(exc)
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
            else:
                if on_ok is not None and not get_current_worker().is_cancelled:
                    self.call_from_thread(on_ok, result)
                return
            if get_current_worker().is_cancelled:
                return
            if on_error is not None:
                self.call_from_thread(on_error, message)
            if not quiet:
                self.post_message(ServiceCallFailed(action, message))

        self.run_worker(
            run,
            thread=True,
            group=group or "call",
            exclusive=group is not None,
            exit_on_error=False,
            name=action,
        )

    def on_service_call_failed(self, msg: ServiceCallFailed) -> None:
        self.notify(
            visible(f"{msg.action}: {msg.message}"), severity="error", timeout=8, markup=False
        )

    def _initial_load(self) -> dict[str, Any]:
        cursor = self.service.last_event_id()  # before the reads: nothing can slip between
        data = {
            "cursor": cursor,
            "queue": self.service.queue(),
            "running": self.service.running(),
            "history": self.service.history(limit=HISTORY_PAGE),
            "approvals": self.service.approval_requests(),
            "workers": self.service.workers(),
            "freezes": self.service.freezes(),
            "catalog": self.service.catalog_problems(),
        }
        data["pool"] = self._maybe_start_pool(data["workers"])
        return data

    def _maybe_start_pool(self, workers: list[Any]) -> str:
        embed = self.embed
        if embed is None:
            others = [w for w in workers if w.alive]
            embed = self.embed_slots is not None or (self.service.embedded_store and not others)
        if not embed:
            return ""
        from opsconsole.runtime import start_pool

        self.pool = start_pool(self.service, slots=self.embed_slots)
        return f"embedded pool: {self.pool.slots} slots"

    def _show_initial(self, data: dict[str, Any]) -> None:
        self.query_one("#queue", JobTable).upsert(data["queue"])
        self.query_one("#running", JobTable).upsert(data["running"])
        self.show_first_history(data["history"])
        status = self.query_one(StatusBar)
        status.set_counts(live_counts(data["queue"], data["running"]), data["workers"])
        status.set_freezes(data["freezes"])
        self._show_approvals(data["approvals"])
        self._show_worker_problems(data["workers"])
        self.show_catalog_problems(data["catalog"])
        self.refresh_reviews()
        self.refresh_webhooks()
        status.set_embedded(data["pool"])
        self.feed.start_at(data["cursor"])
        self.on_store_status(StoreStatus(True))  # before ``ready``: no stale banner on screen
        if self.start_feed:
            self.run_worker(
                self.feed.run, thread=True, name="feed", group="feed", exit_on_error=False
            )
        self._select_first()
        self._pane_hints()
        self.call_after_refresh(self._set_painted)  # after the first pane has taken focus
        # the count of every state reads all of history (a million rows: most of a second):
        # it fills the header after the first paint, not before
        self.call("counts", self.feed.counts, self._show_first_counts, on_error=self._no_counts)

    def _set_painted(self) -> None:
        self.painted = True

    def _show_first_counts(self, counts: dict[str, int]) -> None:
        status = self.query_one(StatusBar)
        status.set_counts(counts, status.worker_views)
        self.call_after_refresh(self._set_ready)

    def _no_counts(self, _message: str) -> None:
        self.call_after_refresh(self._set_ready)  # the feed's next tick tries again

    def _set_ready(self) -> None:
        if self.painted:
            self.ready = True
        else:
            self.call_after_refresh(self._set_ready)

    EMPTY = {
        "queue": "nothing waiting · s submits a job",
        "running": "nothing running",
        "history": "no finished jobs yet",
    }

    def _pane_hints(self) -> None:
        """A pane's subtitle: its filter, or what an empty pane means and what to do."""
        for name, hint in self.EMPTY.items():
            table = self.query_one(f"#{name}", JobTable)
            pane = self.query_one(f"#pane-{name}")
            if table.filter_text:
                pane.border_subtitle = f"filter: {table.filter_text}"
            else:
                pane.border_subtitle = "" if table.row_count else hint

    def _select_first(self) -> None:
        """Start on what matters most: a running job, else the queue's head, else the newest."""
        for name in ("running", "queue", "history"):
            table = self.query_one(f"#{name}", JobTable)
            if table.row_count:
                self.activate(name)
                self.show_log(table.selected_id)
                return

    # -- the feed's messages --------------------------------------------------------------

    def on_jobs_changed(self, msg: JobsChanged) -> None:
        if not self.is_running:  # shutting down: the feed's last messages find no widgets
            return
        for name in ("queue", "running", "history"):
            self.query_one(f"#{name}", JobTable).upsert(msg.jobs)
        self._pane_hints()
        ids = {j.id for j in msg.jobs}
        screen = self.screen
        if isinstance(screen, (JobScreen, HostsScreen)):
            screen.on_jobs_changed(ids)
        if self.log_job in ids:
            self.update_log_title()
        self.selection_moved()  # the cursor's row may have left its pane

    def on_events_arrived(self, msg: EventsArrived) -> None:
        if not self.is_running:
            return
        if any(e.kind in REVIEW_KINDS for e in msg.events):
            self.refresh_reviews()
        if any(e.kind.startswith("webhook.") for e in msg.events):
            self.refresh_webhooks()
        screen = self.screen
        if isinstance(screen, EventsScreen):
            screen.add_events(msg.events)
        elif isinstance(screen, TableView):
            screen.on_feed_tick()

    def on_counts_changed(self, msg: CountsChanged) -> None:
        if not self.is_running:
            return
        status = self.query_one(StatusBar)
        if msg.freezes is not None:
            status.set_freezes(msg.freezes)
        status.set_counts(msg.counts, msg.workers)
        if msg.approvals is not None:
            self._show_approvals(msg.approvals)
        self._show_worker_problems(msg.workers)
        self.query_one("#queue", JobTable).refresh_times()
        self.query_one("#history", JobTable).refresh_times()
        if isinstance(self.screen, SchedulesScreen):
            self.screen.on_counts_tick()
        if self.pool is not None and self.quitting and self.pool.busy() == 0:
            self.exit()

    def on_log_lines_arrived(self, msg: LogLinesArrived) -> None:
        if not self.is_running:
            return
        if msg.job_id == self.log_job:
            self.query_one(LogView).append(msg.lines)
            self.update_log_title()

    def _show_approvals(self, requests: list[ApprovalRequest]) -> None:
        given = {r.job.id: (r.approvals, r.required) for r in requests}
        self.query_one("#queue", JobTable).set_approvals(given)

    def _show_worker_problems(self, workers: list[WorkerView]) -> None:
        self._banner("#workers-banner", banners.workers_text(workers))

    def show_catalog_problems(self, problems: list[str]) -> None:
        self._banner("#catalog-banner", banners.catalog_text(problems))

    def refresh_reviews(self) -> None:
        """The break-glass banner: up while a break-glass run awaits its review."""
        self.call(
            "reviews",
            self.service.open_reviews,
            lambda reviews: self._banner("#review-banner", banners.review_text(reviews)),
            quiet=True,
            group="reviews",
        )

    def refresh_webhooks(self) -> None:
        """The webhooks banner: up while a webhook is disabled after failed deliveries."""
        self.call(
            "webhooks",
            self.service.webhook_warnings,
            lambda lines: self._banner("#webhooks-banner", banners.webhooks_text(lines)),
            quiet=True,
            group="webhooks",
        )

    def on_store_status(self, msg: StoreStatus) -> None:
        if self.is_running:
            self._banner("#banner", banners.store_text(msg.ok, msg.message))

    def _banner(self, selector: str, text: str) -> None:
        banner = self.query_one(selector, Static)
        if str(banner.content) == text and banner.has_class("-visible") == bool(text):
            return  # an update lays out the whole screen: not every tick for the same text
        banner.set_class(bool(text), "-visible")
        banner.update(text)

    # -- actions ----------------------------------------------------------------------------

    def action_filter(self) -> None:
        if isinstance(self.focused, LogView):
            self._search_log()
            return
        table = self.focused_table() or self.query_one("#queue", JobTable)

        def answered(value: str | None) -> None:
            if value is None:
                return
            table.set_filter(value)
            if table.kind == "history":
                self.reload_history(value.strip())
            self._pane_hints()

        self.push_screen(
            PromptScreen(
                f"Filter {table.kind} (words match id, template, state, tag, params)",
                value=table.filter_text,
            ),
            answered,
        )

    def action_goto(self) -> None:
        def answered(value: str | None) -> None:
            if not value:
                return
            name = value.strip().lower()
            matches = [v for v in VIEWS if v.startswith(name)]
            if not matches:
                self.notify(
                    f"no view '{name}': {', '.join(VIEWS)}", severity="warning", markup=False
                )
                return
            target = VIEWS[matches[0]]
            if target.startswith("pane:"):
                self.activate(target[5:])
            else:
                self.call_next(self.run_action, target)  # a coroutine: let Textual await it

        self.push_screen(PromptScreen("Go to view", placeholder=" | ".join(VIEWS)), answered)

    def activate(self, pane: str) -> None:
        self._active_pane = pane
        if self.screen.has_class("narrow"):
            self._show_pane(pane)
        widget = self.query_one(LogView) if pane == "log" else self.query_one(f"#{pane}", JobTable)
        # Focus once the next refresh has applied the layout: a pane the layout has not shown
        # yet cannot take focus, and the request would be lost (seen on a loaded machine).
        # Until then this pane counts as the one in front, so a cursor message from the
        # table that still has focus cannot point the log at its job.
        self.focus_wanted = widget

        def settle() -> None:
            if self.focus_wanted is widget:
                self.focus_wanted = None
                widget.screen.set_focus(widget)

        self.call_after_refresh(settle)

    def _show_pane(self, pane: str) -> None:
        """The narrow layout's one visible pane and its tab. Wide layouts show every pane,
        so ``_activate`` leaves these classes alone there: changing them restyles all three
        tables, which made ``]`` take 50-100 ms (bench/tui_bench.py); ``_layout`` sets them
        when the terminal turns narrow."""
        for name in PANES:
            self.query_one(f"#pane-{name}").set_class(name == pane, "-active")
        left = self.query_one("#left")
        left.set_class(pane == "log", "-log-active")
        left.set_class(pane != "log", "-table-active")
        with contextlib.suppress(Exception):
            self.query_one("#tabs", Tabs).active = f"t-{pane}"

    @on(Tabs.TabActivated, "#tabs")
    def _tab(self, event: Tabs.TabActivated) -> None:
        # The tabs announce their first tab when they mount; on a loaded machine that
        # arrives after the console has moved to another pane. Only a tab that is still the
        # active one, on the narrow layout where tabs are shown, is the operator's choice.
        tabs = self.query_one("#tabs", Tabs)
        if not self.screen.has_class("narrow") or event.tab.id != tabs.active:
            return
        pane = (event.tab.id or "t-queue")[2:]
        if pane != self._active_pane:
            self.activate(pane)

    def action_next_pane(self) -> None:
        order = list(PANES)
        self.activate(order[(order.index(self._active_pane) + 1) % len(order)])

    def action_hosts(self, job_id: str | None = None) -> None:
        """The hosts x tasks grid of the selected (or given) Ansible job."""
        job = job_id or self.selected_job()
        reason = self.why_not("hosts", job) if job_id is None else None
        if job is None or reason is not None:
            self.notify(visible(reason or "no job selected"), severity="warning", markup=False)
            return
        self.push_screen(HostsScreen(job))

    def action_show_locks(self) -> None:
        self.push_screen(LocksScreen())

    def action_show_workers(self) -> None:
        self.push_screen(WorkersScreen())

    def action_show_events(self) -> None:
        self.push_screen(EventsScreen())

    def action_show_catalog(self) -> None:
        self.push_screen(CatalogScreen())

    def action_show_stats(self) -> None:
        self.push_screen(StatsScreen())

    def action_show_schedules(self) -> None:
        self.push_screen(SchedulesScreen())

    def action_show_instances(self) -> None:
        self.push_screen(InstancesScreen())

    def action_show_checks(self) -> None:
        self.push_screen(ChecksScreen())

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        busy = self.pool.busy() if self.pool is not None else 0
        if not busy:
            self.exit()
            return

        def answered(choice: str | None) -> None:
            if choice == "wait":
                self.quitting = True
                self.notify(f"quitting when the {busy} running job(s) end", timeout=10)
                self.pool_drain()
            elif choice == "cancel":
                self.quitting = True
                pool = self.pool
                assert pool is not None
                pool.stop_claiming()  # nothing new starts while the running ones stop
                for job_id in pool.running_jobs():
                    self.call(
                        "cancel", partial(self.service.cancel, job_id, reason="the console quit")
                    )

        self.push_screen(QuitScreen(busy), answered)

    def pool_drain(self) -> None:
        if self.pool is not None:
            self.pool.stop_claiming()

    def on_unmount(self) -> None:
        self.feed.stop()
        if self.pool is not None:
            self.pool.stop(grace=self.service.settings.kill_grace)
