"""Untrusted text (job output, parameters) made safe to put on a terminal.

The one place that knows terminal escape sequences: faces strip them for display (the
console) or make them visible (the CLI), so job output can never drive the terminal.
"""

from __future__ import annotations

import re

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
