"""Untrusted text made safe: escapes stripped on capture, unsafe characters shown escaped on
a screen and ``\\uXXXX``-escaped in JSON (which still decodes to the exact original)."""

from __future__ import annotations

import json
import unicodedata

import pytest

from opsconsole.core.text import (
    UNSAFE,
    UNSAFE_MULTILINE,
    overwrite_returns,
    strip_escapes,
    to_json,
    visible,
)

EVERY = "".join(map(chr, range(0xDC00))) + " " + "".join(map(chr, range(0xDC00, 0x110000)))
"""Every code point, lone surrogates included (a space keeps the last high surrogate from
meeting the first low one: as a pair they would read back from JSON as one character, and
undecodable bytes only ever become low surrogates)."""

C0 = [chr(c) for c in range(0x20) if c not in (0x09, 0x0A)]
C1 = [chr(c) for c in range(0x80, 0xA0)]
BIDI = list("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
SEPARATORS = ["\u2028", "\u2029"]
INVISIBLE = [
    "\u180e",
    "\u200b",
    *map(chr, range(0x2060, 0x2065)),
    *map(chr, range(0x206A, 0x2070)),
    "\ufeff",
    "\ufff9",
    "\ufffa",
    "\ufffb",
    *map(chr, range(0x13430, 0x13440)),
    *map(chr, range(0x1BCA0, 0x1BCA4)),
    *map(chr, range(0x1D173, 0x1D17B)),
    *map(chr, range(0xE0000, 0xE0080)),
]
SURROGATES = list(map(chr, range(0xD800, 0xE000)))
UNSAFE_CLASSES = {
    "C0": C0,
    "DEL": ["\x7f"],
    "C1": C1,
    "bidi": BIDI,
    "separators": SEPARATORS,
    "invisible": INVISIBLE,
    "surrogates": SURROGATES,
}
READABLE_FORMAT = {
    "\u00ad",  # soft hyphen: drawn as a hyphen
    *map(chr, range(0x600, 0x606)),  # Arabic number signs: drawn, spanning the digits
    "\u06dd",
    "\u070f",
    "\u0890",
    "\u0891",
    "\u08e2",
    "\U000110bd",
    "\U000110cd",
    "\u200c",  # zero width non-joiner: Persian and Indic orthography
    "\u200d",  # zero width joiner: emoji sequences
}
"""Format characters (Cf) deliberately left readable."""


# -- strip_escapes: what the engine keeps of captured output --------------------------------


def test_escape_sequences_and_controls_are_removed_but_text_and_tabs_stay() -> None:
    line = "\x1b[31mred\x1b[0m \x1b]0;title\x07ok\tthen \x1b(Bdone\x07\x9b2J"
    assert strip_escapes(line) == "red ok\tthen done"


def test_markup_like_text_is_not_touched() -> None:
    assert strip_escapes("[/bold] [red]x[/red]") == "[/bold] [red]x[/red]"


def test_a_carriage_return_keeps_what_a_terminal_would_show() -> None:
    assert overwrite_returns("10%\r20%\r30% done") == "30% done"
    assert overwrite_returns("plain") == "plain"


# -- visible: the one convention of every human-facing sink ---------------------------------


@pytest.mark.parametrize("name", list(UNSAFE_CLASSES))
def test_every_unsafe_character_is_shown_as_its_python_escape(name: str) -> None:
    for ch in UNSAFE_CLASSES[name]:
        shown = visible(f"a{ch}b")
        assert shown == "a" + repr(ch)[1:-1] + "b", hex(ord(ch))
        assert shown.isascii() and shown.isprintable()


def test_the_escapes_read_as_python_writes_them() -> None:
    assert visible("\x9b2J") == "\\x9b2J"
    assert visible("\x1b[2J\x07\x00\x7f") == "\\x1b[2J\\x07\\x00\\x7f"
    assert visible("invoice_\u202egnp.exe") == "invoice_\\u202egnp.exe"
    assert visible("a\rb\nc") == "a\\rb\\nc"
    assert visible("\U000e0041\udcff") == "\\U000e0041\\udcff"


def test_tab_stays_and_newline_stays_only_where_the_sink_is_multi_line() -> None:
    assert visible("a\tb") == "a\tb"
    assert visible("one\ntwo") == "one\\ntwo"
    assert visible("one\ntwo\r\x9b", multiline=True) == "one\ntwo\\r\\x9b"


def test_readable_text_is_never_changed() -> None:
    for text in (
        "plain ascii ~!@#$%^&*()[]{}<>",
        "café naïve Ærø ß",
        "日本語のテキスト 한국어 中文",
        "שלום עולם مرحبا",  # right-to-left scripts render by themselves, no override needed
        "👍🏽 👨\u200d👩\u200d👧 ❤\ufe0f 🏳\ufe0f\u200d🌈",
        "می\u200cخواهم",  # noqa: RUF001 - Persian needs the zero width non-joiner
        "e\u0301 combining",
        "nbsp\u00a0thin\u2009ideographic\u3000",
        "C:\\path\\x41 stays",  # a literal backslash is text
        "[red]markup[/red]",
    ):
        assert visible(text) == text
        assert visible(text, strip_sequences=True) == text


def test_over_every_code_point_only_the_unsafe_ones_change() -> None:
    unsafe = {ch for chars in UNSAFE_CLASSES.values() for ch in chars} | {"\n"}
    changed = {ch for ch in EVERY if visible(ch) != ch}
    assert changed == unsafe
    shown = visible(EVERY)
    assert UNSAFE.search(shown) is None
    shown.encode("utf-8")  # no lone surrogate left to fail a write


def test_the_readable_format_characters_are_a_decision() -> None:
    """A Python with a newer Unicode may bring format characters: decide on each here."""
    readable = {
        ch
        for ch in EVERY
        if unicodedata.category(ch) == "Cf" and UNSAFE_MULTILINE.search(ch) is None
    }
    assert readable == READABLE_FORMAT


def test_console_job_output_loses_whole_sequences_and_shows_lone_controls() -> None:
    line = "\x1b[31mred\x1b[0m \x1b]0;title\x07ok\tthen \x1b(Bdone\x9b2J"
    assert visible(line, strip_sequences=True) == "red ok\tthen done"
    lone = "bell\x07 nel\x85 \u202eevil esc\x1b"
    assert visible(lone, strip_sequences=True) == "bell\\x07 nel\\x85 \\u202eevil esc\\x1b"
    assert visible("\x1b[2J", strip_sequences=False) == "\\x1b[2J"  # the CLI shows them


# -- to_json: the one JSON encoder ----------------------------------------------------------


@pytest.mark.parametrize("name", list(UNSAFE_CLASSES))
def test_json_escapes_every_unsafe_character_and_round_trips(name: str) -> None:
    for ch in UNSAFE_CLASSES[name]:
        out = to_json({"k": f"a{ch}b"})
        assert out.isascii() and out.isprintable(), hex(ord(ch))
        assert json.loads(out) == {"k": f"a{ch}b"}


def test_json_keeps_readable_text_readable() -> None:
    value = {"名前": "café 日本 👍\u200d", "n": 1, "ok": True, "none": None}
    out = to_json(value)
    assert out == json.dumps(value, ensure_ascii=False)
    assert "café 日本 👍\u200d" in out


def test_json_of_every_code_point_round_trips_exactly_on_one_line() -> None:
    value = {EVERY[:300]: [EVERY, {"nested": EVERY[::-1]}]}
    out = to_json(value)
    assert json.loads(out) == value
    assert UNSAFE_MULTILINE.search(out) is None
    assert len(out.splitlines()) == 1  # NDJSON: no U+2028, NEL or newline splits it
    out.encode("utf-8")
    assert "\\u202e" in out and "\\u009b" in out and "\\udb40\\udc41" in out


def test_json_and_the_screen_agree_on_what_is_unsafe() -> None:
    in_json = {ch for ch in EVERY if to_json(ch)[1:-1] != json.dumps(ch, ensure_ascii=False)[1:-1]}
    on_screen = {ch for ch in EVERY if visible(ch) != ch}
    # json.dumps escapes C0 itself; beyond that both escape exactly the same characters
    assert in_json == on_screen - set(map(chr, range(0x20)))


def test_json_writes_what_it_cannot_serialise_as_text() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd\u202e"

    assert json.loads(to_json({"x": Odd()})) == {"x": "odd\u202e"}
