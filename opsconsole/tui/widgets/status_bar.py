"""The header: counts per state, workers alive and busy slots, active freezes, the store,
the embedded pool.

A count that waits for a person (jobs awaiting approval) is drawn in reverse colours.

It always fits on one line: on a narrow terminal the labels get shorter (still words), the
least urgent counts make room first, and the store path loses its middle, never its file.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from opsconsole.core.freezes import FreezeView
from opsconsole.core.text import STATE_STYLES, visible
from opsconsole.core.views import WorkerView

SHOWN = [
    ("awaiting_approval", "awaiting approval"),
    ("waiting", "waiting"),
    ("scheduled", "scheduled"),
    ("queued", "queued"),
    ("running", "running"),
    ("succeeded", "ok"),
    ("partial", "partial"),
    ("failed", "failed"),
    ("timed_out", "timed out"),
    ("cancelled", "cancelled"),
    ("interrupted", "interrupted"),
]
SHORT = {
    "awaiting_approval": "approval",
    "scheduled": "sched",
    "timed_out": "timeout",
    "interrupted": "intr",
}
"""Narrow labels: shorter, still words an operator reads without a legend."""
DROP_FIRST = ["succeeded", "cancelled", "scheduled", "partial", "interrupted", "waiting"]
"""On a line too short for every count, these leave first (live trouble stays)."""
ALWAYS = ("queued", "running")
EYE_CATCHING = {"awaiting_approval": "bold reverse magenta"}
"""Counts that ask a person to act: label and number in reverse, so they draw the eye."""
WIDE = 120


def shorten_path(text: str, width: int) -> str:
    """``text`` in ``width`` cells: the middle directories elided, the file name kept."""
    if len(text) <= width:
        return text
    head, sep, name = text.rpartition("/")
    if not sep or len(name) + 2 > width:
        return "…" + text[-(width - 1) :] if width > 1 else "…"
    parts = head.split("/")
    front, back = [parts[0]], [name]
    left = width - len(parts[0]) - len(name) - 3  # two separators and the ellipsis
    for part in reversed(parts[1:]):
        if len(part) + 1 > left:
            break
        back.insert(0, part)
        left -= len(part) + 1
    if left < 0:
        return "…/" + name
    return "/".join([*front, "…", *back])


class StatusBar(Static):
    def __init__(self, store: str, **kw: object) -> None:
        super().__init__("", **kw)  # type: ignore[arg-type]
        self.store = store
        self.counts: dict[str, int] = {}
        self.worker_views: list[WorkerView] = []
        self.embedded = ""
        self.freezes: list[FreezeView] = []
        self.shown = Text()

    def on_mount(self) -> None:
        self.render_bar()

    def set_counts(self, counts: dict[str, int], workers: list[WorkerView]) -> None:
        self.counts = counts
        self.worker_views = workers
        self.render_bar()

    def set_freezes(self, freezes: list[FreezeView]) -> None:
        self.freezes = list(freezes)
        self.render_bar()

    def set_embedded(self, text: str) -> None:
        self.embedded = text
        self.render_bar()

    def on_resize(self) -> None:
        self.render_bar()

    def render_bar(self) -> None:
        """Full labels on wide screens; on 80 columns shorter ones, and fewer if need be."""
        width = self.size.width
        compact = 0 < width < WIDE
        store = visible(self.store)
        if compact:  # the file name says it is SQLite; the scheme only takes room
            store = store.removeprefix("sqlite:")
        name = store.rpartition("/")[2]
        keep = min(len(store), len(name) + 2) + 3  # the store's file name, at least
        states = [s for s, _ in SHOWN if self.counts.get(s, 0) or s in ALWAYS]
        tail = self._workers(compact)
        while True:
            t = self._title(compact)
            t.append_text(self._frozen(compact))
            for state, label in SHOWN:
                if state in states:
                    self._count(t, state, SHORT.get(state, label) if compact else label, compact)
            t.append_text(tail)
            droppable = [s for s in DROP_FIRST if s in states]
            if width <= 0 or t.cell_len + keep <= width or not droppable:
                break
            states.remove(droppable[0])
        room = width - t.cell_len - 3 if width > 0 else len(store)
        short = shorten_path(store, room) if room > 0 else ""
        if short and (short == store or short.startswith(("…/", store.split("/")[0]))):
            t.append(" │ ", style="dim")
            t.append(short, style="dim")
        if t == self.shown:
            return  # an update lays out the whole screen: not for the same line again
        self.shown = t
        self.update(t, layout=False)  # always one line (``height: 1``): nothing moves

    @staticmethod
    def _title(compact: bool) -> Text:
        t = Text()
        t.append(" ops " if compact else " opsconsole ", style="bold reverse")
        t.append(" ")
        return t

    def _frozen(self, compact: bool) -> Text:
        """``FROZEN: all jobs (reason)`` in reverse red while any freeze holds; one names
        itself, several count (``freeze list`` shows them)."""
        t = Text()
        if not self.freezes:
            return t
        if len(self.freezes) == 1 and not compact:
            f = self.freezes[0]
            text = f" FROZEN: {visible(f.target)} ({visible(f.reason)[:40]}) "
        else:
            text = f" FROZEN {len(self.freezes)} " if compact else f" {len(self.freezes)} FREEZES "
        t.append(text, style="bold reverse red")
        t.append(" ")
        return t

    def _count(self, t: Text, state: str, label: str, compact: bool) -> None:
        n = self.counts.get(state, 0)
        if n and state in EYE_CATCHING:
            t.append(f" {label} {n} ", style=EYE_CATCHING[state])
            t.append(" " if compact else "  ")
            return
        t.append(f"{label} ", style="dim")
        t.append(f"{n} " if compact else f"{n}  ", style=STATE_STYLES.get(state, "") if n else "")

    def _workers(self, compact: bool) -> Text:
        alive = [w for w in self.worker_views if w.alive]
        busy = sum(w.busy for w in alive)
        slots = sum(w.slots for w in alive)
        t = Text()
        t.append("│ ", style="dim")
        text = (
            f"workers {len(alive)} {busy}/{slots}"
            if compact
            else f"workers {len(alive)} ({busy}/{slots} busy)"
        )
        t.append(text, style="" if alive else "yellow")
        if self.embedded:
            t.append(" · embedded" if compact else f" · {self.embedded}", style="cyan")
        return t
