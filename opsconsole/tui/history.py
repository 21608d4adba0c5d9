"""History at any size: a window of pages that follows the cursor, keyset-paged both ways.

A mixin of ``OpsConsole``. The first page comes with the first load; the page below loads
as the cursor nears the window's bottom, the page above (once the window was cut there) as
it nears its top; End shows the oldest page and Home the newest. A million finished jobs
cost the window (``HISTORY_MAX`` rows) and one page per read, never a count or a scan.
Every read runs through ``OpsConsole.call`` (a thread worker); only the newest request's
answer is shown, so a burst of keys ends where the last key asked to be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opsconsole.core.views import JobView
from opsconsole.tui.widgets.job_table import JobTable

if TYPE_CHECKING:
    from opsconsole.core.service import OpsService

HISTORY_PAGE = 200
"""Finished jobs per read."""


class HistoryPages:
    """Needs the app's ``service``, ``call`` and ``query_one``."""

    service: OpsService
    history_text: str
    call: Callable[..., None]
    query_one: Callable[..., Any]

    _history_request = 0
    _history_busy = False

    def history_table(self) -> JobTable:
        table: JobTable = self.query_one("#history", JobTable)
        return table

    def show_first_history(self, rows: list[JobView]) -> None:
        """The newest page, as the first load or a new filter read it."""
        table = self.history_table()
        table.replace(rows, keep_cursor=True)
        table.more_above = False
        table.more_below = len(rows) == HISTORY_PAGE

    def _history_read(
        self, read: Callable[[str | None], list[JobView]], show: Callable[[list[JobView]], None]
    ) -> None:
        """Read a page off the UI thread; show it only if no newer request came since."""
        self._history_request += 1
        request = self._history_request
        self._history_busy = True
        text = self.history_text or None

        def done(rows: list[JobView]) -> None:
            if request == self._history_request:
                self._history_busy = False
                show(rows)

        def failed(_message: str) -> None:
            if request == self._history_request:
                self._history_busy = False

        self.call("history", lambda: read(text), done, on_error=failed, group="history")

    def on_job_table_near_end(self, msg: JobTable.NearEnd) -> None:
        table = msg.table
        if self._history_busy or not table.more_below:
            return
        before = table.oldest_finished()
        self._history_read(
            lambda text: self.service.history(before=before, limit=HISTORY_PAGE, text=text),
            lambda rows: table.add_page(rows, above=False, more=len(rows) == HISTORY_PAGE),
        )

    def on_job_table_near_top(self, msg: JobTable.NearTop) -> None:
        table = msg.table
        if self._history_busy or not table.more_above:
            return
        after = table.newest_finished()
        self._history_read(
            lambda text: self.service.history_after(after=after, limit=HISTORY_PAGE, text=text),
            lambda rows: table.add_page(rows, above=True, more=len(rows) == HISTORY_PAGE),
        )

    def on_job_table_jumped(self, msg: JobTable.Jumped) -> None:
        """End: the oldest page, its last row selected; Home: the newest, its first."""
        table = msg.table
        if msg.to_end:

            def show_end(rows: list[JobView]) -> None:
                table.replace(rows)
                table.more_below = False
                table.more_above = len(rows) == HISTORY_PAGE
                if table.row_count:
                    table.move_cursor(row=table.row_count - 1, scroll=True)

            self._history_read(
                lambda text: self.service.history_after(limit=HISTORY_PAGE, text=text), show_end
            )
            return

        def show_top(rows: list[JobView]) -> None:
            self.show_first_history(rows)
            if table.row_count:
                table.move_cursor(row=0, scroll=True)

        self._history_read(
            lambda text: self.service.history(limit=HISTORY_PAGE, text=text), show_top
        )

    def reload_history(self, text: str) -> None:
        """A new filter: the newest page of the jobs it matches, added to the rows the table
        kept (the table's own filter also matches tags and teams, the store's may not)."""
        self.history_text = text
        table = self.history_table()

        def show(rows: list[JobView]) -> None:
            table.more_above = False
            table.upsert(rows)
            table.more_below = len(rows) == HISTORY_PAGE

        self._history_read(lambda text: self.service.history(limit=HISTORY_PAGE, text=text), show)
