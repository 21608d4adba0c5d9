"""Sparklines as Rich text: a check's recent statuses as coloured blocks and its latencies
as bars, small enough for a table cell.

Pure functions of the values they are given: no I/O, no timers; the screen that shows them
re-renders when the feed says something changed.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from opsconsole.core.text import CHECK_STYLES

STATUS_MARKS = {"ok": "▪", "warning": "▲", "critical": "✖", "unknown": "?"}
"""One character per status, so the strip reads without colour too."""
BARS = "▁▂▃▄▅▆▇█"


def status_text(status: str) -> Text:
    """A status as a word in its colour (upper case when it is not ok, as a plugin says it)."""
    return Text(status if status == "ok" else status.upper(), style=CHECK_STYLES.get(status, ""))


def status_strip(statuses: Sequence[str], width: int = 20) -> Text:
    """The last ``width`` statuses, oldest first, one coloured mark each."""
    out = Text()
    for status in statuses[-width:]:
        out.append(STATUS_MARKS.get(status, "?"), style=CHECK_STYLES.get(status, ""))
    return out


def latency_sparkline(values: Sequence[float | None], width: int = 20) -> Text:
    """The last ``width`` latencies as bars in proportion to the highest shown (from zero, so
    a small wobble stays small); a gap where a result had none (a check that measures no
    time, or failed before it could)."""
    shown = list(values[-width:])
    top = max((v for v in shown if v is not None), default=0.0)
    out = Text(style="cyan")
    for v in shown:
        if v is None:
            out.append(" ")
        elif top <= 0:
            out.append(BARS[0])
        else:
            out.append(BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1) + 0.5))])
    return out
