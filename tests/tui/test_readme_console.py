"""The README's console section describes the console as it is: every key of the registry."""

from __future__ import annotations

from pathlib import Path

from opsconsole.tui import actions

README = Path(__file__).resolve().parents[2] / "README.md"
SPELLED = {"enter": "enter", "right_square_bracket": "]"}
"""How the README writes a key whose footer label is a symbol."""


def console_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Console\n")
    return text[start : text.index("\n## ", start + 1)]


def test_every_console_key_is_in_the_readme() -> None:
    section = console_section()
    missing = [
        a.name
        for a in actions.ACTIONS
        if f"`{SPELLED.get(a.key, actions.key_label(a.key))}`" not in section
    ]
    assert not missing, f"keys the README's console section does not mention: {missing}"


def test_every_view_you_can_go_to_is_named() -> None:
    from opsconsole.tui.app import VIEWS

    section = console_section()
    line = next(ln for ln in section.splitlines() if ln.startswith("| `:` |"))
    assert all(view in line for view in VIEWS), line
