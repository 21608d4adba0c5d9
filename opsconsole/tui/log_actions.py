"""The log tail's side of the console: which job it shows, search, pager and save.

A mixin of ``OpsConsole``: every store read here runs through ``OpsConsole.call`` (a
thread worker); the LogView widget only ever receives lines. Saving creates a new file and
never follows a link or overwrites anything: a taken name moves on to the next free one.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from opsconsole.core.errors import OpsError
from opsconsole.core.text import visible
from opsconsole.core.views import LogLine
from opsconsole.tui.screens.dialogs import PromptScreen
from opsconsole.tui.widgets.log_pane import LogView

if TYPE_CHECKING:
    from opsconsole.core.service import OpsService
    from opsconsole.tui.feed import Feed

TAIL = 2000
"""Log lines fetched when a job is selected; older ones load on scroll."""

SAVE_NAMES = 100
"""How many names (``opsconsole-JOB.log``, ``opsconsole-JOB-2.log``, ...) saving tries."""

_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def create_log_file(directory: Path, job: str) -> tuple[Path, TextIO]:
    """A new file (mode 0600) for a saved log: never a link followed, never a file replaced.

    ``O_EXCL`` fails on any existing name, a planted symbolic link included, so a taken name
    moves on to ``opsconsole-JOB-2.log`` and so on.
    """
    for n in range(1, SAVE_NAMES + 1):
        path = directory / (f"opsconsole-{job}.log" if n == 1 else f"opsconsole-{job}-{n}.log")
        try:
            fd = os.open(path, _CREATE_NEW, 0o600)
        except FileExistsError:
            continue
        return path, os.fdopen(fd, "w", encoding="utf-8", errors="replace")
    raise OpsError(
        f"not saved: opsconsole-{job}.log to opsconsole-{job}-{SAVE_NAMES}.log all exist "
        f"in {directory}"
    )


class LogTail:
    """Needs the app's ``service``, ``feed``, ``call``, ``notify`` and ``known``."""

    service: OpsService
    feed: Feed
    log_job: str | None

    def show_log(self, job_id: str | None) -> None:
        """Point the log tail at ``job_id``: its last lines now, new ones as they come."""
        if job_id is None or job_id == self.log_job:
            return
        self.log_job = job_id
        view = self.query_one(LogView)
        view.clear_log()
        self.feed.follow(None, 0)
        self.update_log_title()

        def load() -> tuple[list[LogLine], bool]:
            lines = self.service.log_tail(job_id, TAIL)
            return lines, bool(lines) and lines[0].seq > 1

        def show(result: tuple[list[LogLine], bool]) -> None:
            if self.log_job != job_id:
                return
            lines, older = result
            view.load(job_id, lines, has_older=older)
            self.feed.follow(job_id, lines[-1].seq if lines else 0)
            self.update_log_title()

        self.call("log", load, show, group="log")

    def update_log_title(self) -> None:
        pane = self.query_one("#pane-log")
        view = self.query_one(LogView)
        if self.log_job is None:
            pane.border_title, pane.border_subtitle = "Log", ""
            return
        job = self.known(self.log_job)
        what = f"{job.template} · {job.state.value}" if job else ""
        pane.border_title = f"Log {self.log_job} {what}"
        if view.tail_dropped or not view.following:
            more = f" · {view.new_lines} new lines" if view.new_lines else ""
            pane.border_subtitle = f"paused{more} · End to follow"
        else:
            pane.border_subtitle = "following"
        if view.search_text:
            pane.border_subtitle += f" · /{view.search_text}: {len(view.matches)} matches"

    def on_log_view_need_older(self, msg: LogView.NeedOlder) -> None:
        def load() -> list[LogLine]:
            return self.service.log_tail(msg.job_id, TAIL, before=msg.before)

        def show(lines: list[LogLine]) -> None:
            if msg.view.job_id == msg.job_id:
                msg.view.prepend(lines, has_older=bool(lines) and lines[0].seq > 1)

        self.call("log", load, show, group="log-older")

    def on_log_view_need_tail(self, msg: LogView.NeedTail) -> None:
        self.log_job = None
        self.show_log(msg.job_id)

    def _search_log(self) -> None:
        view = self.query_one(LogView)
        job = view.job_id
        if job is None:
            return

        def answered(value: str | None) -> None:
            if value is None:
                return
            query = value.strip()
            if not query:
                view.set_matches("", [])
                self.update_log_title()
                return

            def found(seqs: list[int]) -> None:
                view.set_matches(query, seqs)
                self.update_log_title()
                if seqs:
                    self.action_next_match()
                else:
                    self.notify(
                        visible(f"no line matches '{query}'"), severity="warning", markup=False
                    )

            self.call("search", lambda: self.service.search_log(job, query, limit=100_000), found)

        self.push_screen(PromptScreen("Search the log", value=view.search_text), answered)

    def _goto_match(self, forward: bool) -> None:
        view = self.query_one(LogView)
        if not view.matches or view.job_id is None:
            return
        current = view.match_at
        if current is None:
            first_visible = view.scroll_offset.y
            idx = min(first_visible, len(view.lines) - 1) if view.lines else 0
            current = view.lines[idx].seq - (1 if forward else -1) if view.lines else 0
        if forward:
            target = next((s for s in view.matches if s > current), view.matches[0])
        else:
            target = next((s for s in reversed(view.matches) if s < current), view.matches[-1])
        if view.show_seq(target):
            self.update_log_title()
            return
        job = view.job_id

        def load() -> tuple[list[LogLine], bool]:
            lines = self.service.logs_since(job, max(0, target - 500), limit=1000)
            return lines, bool(lines) and lines[0].seq > 1

        def show(result: tuple[list[LogLine], bool]) -> None:
            lines, older = result
            view.window_around(lines, older)
            view.show_seq(target)
            self.update_log_title()

        self.call("log", load, show, group="log")

    def action_next_match(self) -> None:
        self._goto_match(True)

    def action_prev_match(self) -> None:
        self._goto_match(False)

    def action_context(self) -> None:
        view = self.query_one(LogView)
        on_ = view.toggle_context()
        self.notify("showing matching lines with context" if on_ else "showing every line")

    def _dump_log(self, job: str, fh: TextIO) -> None:
        """Write the whole stored log to ``fh`` in batches (never all in memory)."""
        after = 0
        while True:
            lines = self.service.logs_since(job, after, limit=5000)
            if not lines:
                return
            for ln in lines:
                fh.write(ln.text + "\n")
            after = lines[-1].seq

    def action_pager(self) -> None:
        job = self.log_job
        if job is None:
            return
        pager = os.environ.get("PAGER") or "less -R"

        def dump() -> Path:
            fd, name = tempfile.mkstemp(prefix=f"opsconsole-{job}-", suffix=".log")
            try:
                with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as fh:
                    self._dump_log(job, fh)
            except BaseException:
                os.unlink(name)
                raise
            return Path(name)

        def show(path: Path) -> None:
            try:
                with self.suspend():
                    subprocess.run([*shlex.split(pager), str(path)], check=False)
            except Exception as exc:
                self.notify(visible(f"cannot run $PAGER: {exc}"), severity="error", markup=False)
            finally:
                with contextlib.suppress(OSError):
                    path.unlink()

        self.call("pager", dump, show)

    def action_save_log(self) -> None:
        job = self.log_job
        if job is None:
            return

        def save() -> Path:
            path, fh = create_log_file(Path.cwd(), job)
            made = os.fstat(fh.fileno())
            try:
                with fh:
                    self._dump_log(job, fh)
            except BaseException:
                _remove_if_same(path, made)
                raise
            return path

        def saved(path: Path) -> None:
            taken = path.name != f"opsconsole-{job}.log"
            note = f" (opsconsole-{job}.log already exists)" if taken else ""
            self.notify(visible(f"saved the log of {job} to {path}{note}"), markup=False)

        self.call("save log", save, saved)


def _remove_if_same(path: Path, made: os.stat_result) -> None:
    """Remove a half-written save, but only if ``path`` is still the file this process made."""
    with contextlib.suppress(OSError):
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) == (made.st_dev, made.st_ino):
            path.unlink()
