"""Untrusted text (job output, parameters) made safe to put on a terminal.

The one place that knows terminal escape sequences: faces strip them for display (the
console) or make them visible (the CLI), so job output can never drive the terminal.
"""

from __future__ import annotations

import re

ESCAPES = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC (title, hyperlinks, clipboard)
    r"|\x1b[P^_X][^\x1b]*(?:\x1b\\)?"  # DCS, PM, APC, SOS strings
    r"|\x1b\[[0-?]*[ -/]*[@-~]"  # CSI (colours, cursor moves)
    r"|\x1b[ -/]*[0-~]"  # two-byte escapes
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # C0 and C1 controls but tab and newline
)


def strip_escapes(text: str) -> str:
    """Remove escape sequences and control characters; tabs survive."""
    if text.isprintable():
        return text
    return ESCAPES.sub("", text)
