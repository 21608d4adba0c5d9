"""Text both faces show: untrusted output made safe, times and states said the same way.

The one place that knows terminal escape sequences: faces strip them for display (the
console) or make them visible (the CLI), so job output can never drive the terminal. The
CLI and the console also share here how they say "4m ago", a duration and a state's colour.
"""

from __future__ import annotations

import re
from datetime import datetime

ESCAPES = re.compile(
    r"(?:\x1b[]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"  # OSC, DCS...
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI (7- and 8-bit)
    r"|\x1b[ -/]*[0-~]"  # the rest: charset designations like ESC ( B, ESC 7, ESC c
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # C0 and C1 controls but tab
)


def strip_escapes(text: str) -> str:
    """Remove escape sequences and control characters; tabs survive."""
    if text.isprintable():
        return text
    return ESCAPES.sub("", text)


def overwrite_returns(text: str) -> str:
    """A carriage return inside a line overwrites it on a terminal: keep what would show."""
    return text.rsplit("\r", 1)[-1] if "\r" in text else text


STATE_STYLES: dict[str, str] = {
    "awaiting_approval": "magenta",
    "waiting": "yellow",
    "scheduled": "cyan",
    "queued": "blue",
    "running": "bold",
    "succeeded": "green",
    "partial": "yellow",
    "failed": "bold red",
    "timed_out": "red",
    "cancelled": "dim",
    "rejected": "dim red",
    "interrupted": "red",
}
"""Rich style names per state, the same in the CLI's tables and the console."""


def ago(ts: datetime | None, now: datetime) -> str:
    """``4m ago`` or ``in 4m``; ``-`` for no time."""
    if ts is None:
        return "-"
    secs = (now - ts).total_seconds()
    future, secs = secs < 0, abs(secs)
    if secs < 60:
        text = f"{secs:.0f}s"
    elif secs < 3600:
        text = f"{secs // 60:.0f}m"
    elif secs < 86400:
        text = f"{secs // 3600:.0f}h{(secs % 3600) // 60:02.0f}m"
    else:
        text = f"{secs // 86400:.0f}d"
    return f"in {text}" if future else f"{text} ago"


def duration(seconds: float | None) -> str:
    """``0.4s``, ``2m05s``, ``1h07m``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
