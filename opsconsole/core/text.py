"""Text both faces show: untrusted text made safe, times and states said the same way.

The one place that knows which characters are dangerous on a screen or in a data stream:
controls that drive a terminal, bidirectional overrides that reorder what a reader sees,
and invisible characters that hide or disguise text. Every human-facing sink shows them
with ``visible`` (as Python's ``repr`` writes them); every JSON writer uses ``to_json``,
which escapes them as ``\\uXXXX`` so the data round-trips exactly. Terminal escape
sequences in job output are the one thing removed rather than shown (``strip_sequences``
in the console, ``strip_escapes`` when the engine captures output). The CLI and the
console also share here how they say "4m ago", a duration and a state's colour.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

SEQUENCES = re.compile(
    r"(?:\x1b[]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"  # OSC, DCS...
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI (7- and 8-bit)
    r"|\x1b[ -/]*[0-~]"  # the rest: charset designations like ESC ( B, ESC 7, ESC c
)
"""Terminal escape sequences, whole: what the console removes from job output."""
ESCAPES = re.compile(SEQUENCES.pattern + r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""What the engine removes from captured output: the sequences, and C0/C1 controls but tab."""

# Unsafe in any text a person reads, and escaped in JSON:
#  - C0 controls (tab, and newline in multi-line sinks, excepted), DEL and C1 controls:
#    they move the cursor, clear the screen, retitle the window, or start 8-bit sequences.
#  - bidirectional controls (ALM, LRM, RLM, LRE..RLO, LRI..PDI): they reorder what a
#    reader sees, so "invoice_<RLO>gnp.exe" reads "invoice_exe.png".
#  - line and paragraph separators (U+2028, U+2029): some terminals and editors break the
#    line there (a forged extra line), and JavaScript before ES2019 ends a string there.
#  - format characters that draw nothing, so can hide or disguise text: zero width space,
#    word joiner and invisible operators, the deprecated shaping controls, the Mongolian
#    vowel separator, a byte order mark, interlinear annotations, the Egyptian, shorthand
#    and musical layout controls, and tag characters (which can carry a whole invisible
#    ASCII text).
#  - lone surrogates (undecodable bytes kept by ``surrogateescape``): not encodable.
# Readable on purpose: zero width joiner and non-joiner (emoji, Persian and Indic text need
# them; they join or separate neighbours, never reorder or hide them), the soft hyphen and
# the Arabic, Syriac and Kaithi number marks (all drawn), variation selectors, combining
# marks, spaces of every width, private-use and unassigned code points (drawn as a glyph).
_UNSAFE_OTHER = (
    r"\x7f-\x9f"
    r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
    r"\u2028\u2029"
    r"\u180e\u200b\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb"
    r"\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e007f"
    r"\ud800-\udfff"
)
UNSAFE = re.compile(rf"[\x00-\x08\x0a-\x1f{_UNSAFE_OTHER}]")
"""Characters a one-line sink shows escaped (everything unsafe but tab)."""
UNSAFE_MULTILINE = re.compile(rf"[\x00-\x08\x0b-\x1f{_UNSAFE_OTHER}]")
"""The same for a multi-line sink, where newline keeps its meaning."""
_UNSAFE_JSON = re.compile(rf"[\x00-\x1f{_UNSAFE_OTHER}]")

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if ch in _NAMED:
        return _NAMED[ch]
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str, *, multiline: bool = False, strip_sequences: bool = False) -> str:
    """Show every unsafe character as Python's ``repr`` writes it (``\\x9b``, ``\\u202e``).

    Shown, not deleted, so an operator sees that something was there. A literal backslash
    is left alone: readable paths matter more than telling ``\\x07`` typed from a real BEL.
    ``multiline`` keeps newlines (a sink that lays out several lines); ``strip_sequences``
    first removes whole terminal escape sequences, for job output shown in the console.
    """
    if text.isprintable():  # no control, format, separator or surrogate: the common case
        return text
    if strip_sequences:
        text = SEQUENCES.sub("", text)
    return (UNSAFE_MULTILINE if multiline else UNSAFE).sub(_escaped, text)


def _json_escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON spells a character beyond the BMP as a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def to_json(obj: Any) -> str:
    """One line of JSON: readable non-ASCII text, unsafe characters as ``\\uXXXX``.

    ``json.dumps`` with ``ensure_ascii=False`` leaves C1 controls, bidirectional overrides
    and line separators raw; they can only occur inside strings, where ``\\uXXXX`` means
    the same character, so escaping them in the output keeps the value exact. (As in any
    JSON, a lone high surrogate right before a lone low one reads back as the pair's
    character; undecodable bytes only ever become low surrogates.)
    """
    out = json.dumps(obj, ensure_ascii=False, default=str)
    return out if out.isprintable() else _UNSAFE_JSON.sub(_json_escaped, out)


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
CHECK_STYLES: dict[str, str] = {
    "ok": "green",
    "warning": "yellow",
    "critical": "bold red",
    "unknown": "magenta",
}
"""Rich style names per check status, the same in ``checks list`` and the Checks view."""


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
