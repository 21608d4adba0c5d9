"""The header: counts per state, workers alive and busy slots, the store, the embedded pool."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from opsconsole.core.text import STATE_STYLES, visible
from opsconsole.core.views import WorkerView

SHOWN = [
    ("awaiting_approval", "approval"),
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


class StatusBar(Static):
    def __init__(self, store: str, **kw: object) -> None:
        super().__init__("", **kw)  # type: ignore[arg-type]
        self.store = store
        self.counts: dict[str, int] = {}
        self.worker_views: list[WorkerView] = []
        self.embedded = ""

    def on_mount(self) -> None:
        self.render_bar()

    def set_counts(self, counts: dict[str, int], workers: list[WorkerView]) -> None:
        self.counts = counts
        self.worker_views = workers
        self.render_bar()

    def set_embedded(self, text: str) -> None:
        self.embedded = text
        self.render_bar()

    def on_resize(self) -> None:
        self.render_bar()

    def render_bar(self) -> None:
        """Full labels on wide screens; on 80 columns the same facts, abbreviated."""
        compact = 0 < self.size.width < 120
        t = Text()
        t.append(" ops " if compact else " opsconsole ", style="bold reverse")
        t.append(" ")
        for state, label in SHOWN:
            n = self.counts.get(state, 0)
            if n or state in ("queued", "running"):
                t.append(f"{label[:4] if compact else label} ", style="dim")
                t.append(
                    f"{n} " if compact else f"{n}  ", style=STATE_STYLES.get(state, "") if n else ""
                )
        alive = [w for w in self.worker_views if w.alive]
        busy = sum(w.busy for w in alive)
        slots = sum(w.slots for w in alive)
        t.append("│ ", style="dim")
        workers = (
            f"w {len(alive)} {busy}/{slots}"
            if compact
            else (f"workers {len(alive)} ({busy}/{slots} busy)")
        )
        t.append(workers, style="" if alive else "yellow")
        if self.embedded:
            t.append(" · embedded" if compact else f" · {self.embedded}", style="cyan")
        if not compact:
            t.append(" │ ", style="dim")
            t.append(visible(self.store), style="dim")
        self.update(t)
