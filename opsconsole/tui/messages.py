"""Facts posted by workers to the UI: attributes down, messages up."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

from opsconsole.core.approvals import ApprovalRequest
from opsconsole.core.freezes import FreezeView
from opsconsole.core.views import EventView, JobView, LogLine, WorkerView


@dataclass
class JobsChanged(Message):
    """These jobs changed (or appeared): tables update the rows in place."""

    jobs: list[JobView]


@dataclass
class EventsArrived(Message):
    events: list[EventView]


@dataclass
class LogLinesArrived(Message):
    """New lines of the followed job's log, in order."""

    job_id: str
    lines: list[LogLine]


@dataclass
class CountsChanged(Message):
    counts: dict[str, int]
    workers: list[WorkerView] = field(default_factory=list)
    freezes: list[FreezeView] | None = None
    """The active freezes, for the header (None: not read this time)."""
    approvals: list[ApprovalRequest] | None = None
    """The jobs awaiting approval and how far each is (None: not read this time)."""


@dataclass
class StoreStatus(Message):
    """The store answered (``ok``) or failed; the app shows a banner while it fails."""

    ok: bool
    message: str = ""


@dataclass
class ServiceCallFailed(Message):
    """An operator action failed: shown as a notification, never a crash."""

    action: str
    message: str
