"""The one action registry: key bindings, footer, help screen and command palette read it.

So the four can never disagree about what a key does.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Action:
    name: str
    """The ``action_<name>`` method on the app."""
    key: str
    label: str
    """Short, for the footer."""
    description: str
    footer: bool = True
    destructive: bool = False
    group: str = "jobs"


ACTIONS: tuple[Action, ...] = (
    Action("submit", "s", "Submit", "Submit a job from a template"),
    Action("cancel", "c", "Cancel", "Cancel the selected job", destructive=True),
    Action("retry", "r", "Retry", "Retry the selected job"),
    Action("detail", "enter", "Detail", "Open the selected job", footer=False),
    Action("follow", "f", "Follow log", "Follow the selected job's log"),
    Action("filter", "slash", "Filter", "Filter the focused table / search the log"),
    Action("goto", "colon", "Go to", "Jump to a view by name", group="views"),
    Action("help", "question_mark", "Help", "All keys", group="app"),
    Action("quit", "q", "Quit", "Quit", group="app"),
    Action("priority", "p", "Priority", "Change the priority of a queued job"),
    Action("next_match", "n", "Next", "Next search match in the log", False, group="log"),
    Action("prev_match", "N", "Prev", "Previous search match in the log", False, group="log"),
    Action("context", "x", "Context", "Log: only matching lines, with context", False, group="log"),
    Action("pager", "o", "Pager", "Open the whole log in $PAGER", False, group="log"),
    Action("save_log", "w", "Save", "Save the whole log to a file", False, group="log"),
    Action(
        "show_locks",
        "L",
        "Locks",
        "Locks: who holds each concurrency key, who waits",
        False,
        group="views",
    ),
    Action(
        "show_workers", "W", "Workers", "Workers: slots, heartbeats, resize", False, group="views"
    ),
    Action("show_events", "E", "Events", "Live event stream of every job", False, group="views"),
    Action("show_stats", "S", "Stats", "Statistics per template", False, group="views"),
    Action(
        "next_pane",
        "right_square_bracket",
        "Next pane",
        "Next pane (Tab moves the focus)",
        False,
        group="views",
    ),
    Action("toggle_theme", "t", "Theme", "Toggle dark / light theme", False, group="app"),
)

BY_NAME = {a.name: a for a in ACTIONS}


def bindings() -> list[Binding]:
    return [Binding(a.key, a.name, a.label, show=a.footer, tooltip=a.description) for a in ACTIONS]


def key_label(key: str) -> str:
    return {
        "slash": "/",
        "colon": ":",
        "question_mark": "?",
        "enter": "⏎",
        "right_square_bracket": "]",
    }.get(key, key)
