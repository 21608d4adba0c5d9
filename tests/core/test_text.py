"""Untrusted text made safe for a terminal: escapes stripped, carriage returns resolved."""

from __future__ import annotations

from opsconsole.core.text import overwrite_returns, strip_escapes


def test_escape_sequences_and_controls_are_removed_but_text_and_tabs_stay() -> None:
    line = "\x1b[31mred\x1b[0m \x1b]0;title\x07ok\tthen \x1b(Bdone\x07\x9b2J"
    assert strip_escapes(line) == "red ok\tthen done"


def test_markup_like_text_is_not_touched() -> None:
    assert strip_escapes("[/bold] [red]x[/red]") == "[/bold] [red]x[/red]"


def test_a_carriage_return_keeps_what_a_terminal_would_show() -> None:
    assert overwrite_returns("10%\r20%\r30% done") == "30% done"
    assert overwrite_returns("plain") == "plain"
