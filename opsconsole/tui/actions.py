"""The one action registry: key bindings, footer, help screen and command palette read it.

So the four can never disagree about what a key does.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

from opsconsole.core.states import FINAL, PENDING, JobState
from opsconsole.core.views import JobView


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
    Action("approve", "a", "Approve", "Approve or reject the selected job awaiting approval"),
    Action("cancel", "c", "Cancel", "Cancel the selected job", destructive=True),
    Action("retry", "r", "Retry", "Retry the selected job"),
    Action("detail", "enter", "Detail", "Open the selected job", footer=False),
    Action("follow", "f", "Follow log", "Follow the selected job's log"),
    Action("hosts", "H", "Hosts", "Hosts x tasks grid of the selected Ansible job"),
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
    Action(
        "show_catalog",
        "T",
        "Templates",
        "Templates: the catalog and every problem in it",
        False,
        group="views",
    ),
    Action(
        "cancel_shown",
        "C",
        "Cancel shown",
        "Cancel every job the pane's filter shows",
        False,
        destructive=True,
    ),
    Action("retry_shown", "R", "Retry shown", "Retry every job the pane's filter shows", False),
    Action(
        "show_audit", "A", "Audit", "Audit trail: who did what to which job", False, group="views"
    ),
    Action(
        "show_approvals",
        "G",
        "Approvals",
        "Approvals: every job waiting at its gate",
        False,
        group="views",
    ),
    Action(
        "show_schedules",
        "D",
        "Schedules",
        "Schedules: next fire, last job, the ledger of every fire time",
        False,
        group="views",
    ),
    Action(
        "show_instances",
        "I",
        "Instances",
        "Instances: Terraform instances, their outputs, a gated destroy",
        False,
        group="views",
    ),
    Action(
        "show_checks",
        "K",
        "Checks",
        "Checks: status of each recurring check, its recent results and latencies",
        False,
        group="views",
    ),
    Action("toggle_theme", "t", "Theme", "Toggle dark / light theme", False, group="app"),
)

BY_NAME = {a.name: a for a in ACTIONS}

ON_JOB = frozenset({"cancel", "retry", "priority", "detail", "follow", "approve", "hosts"})
"""Actions on the selected job: offered only when they apply to it (``selection.py``)."""


SCHEDULE_ACTIONS: tuple[Action, ...] = (
    Action("pause", "p", "Pause", "Pause the selected schedule", group="schedules"),
    Action("resume", "p", "Resume", "Resume the selected paused schedule", group="schedules"),
    Action("run", "r", "Run now", "Run the selected schedule now", group="schedules"),
    Action(
        "run_missed",
        "m",
        "Run missed",
        "Run the missed fires in the selected schedule's ledger",
        group="schedules",
    ),
    Action(
        "skip_to_now",
        "k",
        "Skip to now",
        "Record the selected schedule's past fire times skipped",
        group="schedules",
    ),
    Action("last_job", "j", "Last job", "Open the selected schedule's last job", group="schedules"),
)
"""The Schedules view's keys (``screens/schedules.py``): its bindings, the help screen and,
while the view is in front, the command palette read them."""

SCHEDULE_NAMES = frozenset(a.name for a in SCHEDULE_ACTIONS)


def view_bindings(view_actions: tuple[Action, ...]) -> list[Binding]:
    """A view's own keys: each offered only when it applies to the view's selected row,
    and pressed anyway it says why (the view's ``refused`` action)."""
    out = [
        Binding(a.key, a.name, a.label, show=a.footer, tooltip=a.description) for a in view_actions
    ]
    keys = dict.fromkeys(a.key for a in view_actions)
    out += [
        Binding(key, f"refused('{next(a.name for a in view_actions if a.key == key)}')", show=False)
        for key in keys
    ]
    return out


def bindings() -> list[Binding]:
    """One binding per action; a job action's key also falls back to saying why it does
    not apply (the app's ``refused`` action) when the action itself is not offered."""
    out = []
    for a in ACTIONS:
        out.append(Binding(a.key, a.name, a.label, show=a.footer, tooltip=a.description))
        if a.name in ON_JOB:
            out.append(Binding(a.key, f"refused('{a.name}')", a.label, show=False))
    return out


def key_label(key: str) -> str:
    return {
        "slash": "/",
        "colon": ":",
        "question_mark": "?",
        "enter": "⏎",
        "right_square_bracket": "]",
    }.get(key, key)


def refusal(action: str, view: JobView) -> str | None:
    """Why the job action ``action`` cannot apply to the job ``view``, or None if it can."""
    state = view.state.value
    if action == "cancel":
        if view.state in FINAL:
            retry = "; r retries it" if view.can_retry else ""
            return f"{view.id} has already ended ({state}): nothing to cancel{retry}"
        if view.cancel_requested:
            return f"cancellation of {view.id} is already requested: its worker is stopping it"
    if action == "retry" and not view.can_retry:
        if view.state in FINAL:
            return f"{view.id} {state}: there is nothing to retry"
        return f"{view.id} is {state}: only a job that ended without success can be retried"
    if action == "approve" and view.state != JobState.AWAITING_APPROVAL:
        return f"{view.id} is {state}: only a job awaiting approval can be approved or rejected"
    if action == "hosts" and view.runner != "ansible":
        return f"{view.id} runs {view.runner}, not Ansible: only Ansible jobs have a hosts grid"
    if action == "priority" and view.state not in PENDING:
        return f"{view.id} is {state}: only a job waiting in the queue has a priority to change"
    return None
