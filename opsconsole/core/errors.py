"""The OpsError tree: every failure a face can show an operator as one line.

Faces map each class to an exit code (CLI) or a notification (TUI); nothing else is
caught and shown. Messages are complete sentences without secrets.
"""

from __future__ import annotations


class OpsError(Exception):
    """A failure the operator can act on; its message is the one line to show."""

    kind = "error"


class InvalidParams(OpsError):
    """Input that cannot be accepted: a bad parameter, duration, priority or template."""

    kind = "invalid"


class NotFound(OpsError):
    """No job, template or worker matches the given reference."""

    kind = "not_found"


class InvalidTransition(OpsError):
    """The job is not in a state that allows the requested change."""

    kind = "invalid_transition"


class Forbidden(OpsError):
    """The actor may not do this."""

    kind = "forbidden"


class Conflict(OpsError):
    """The change collided with another writer (for example an ambiguous id prefix)."""

    kind = "conflict"


class StoreUnavailable(OpsError):
    """The store cannot be reached or is newer than this version of opsconsole."""

    kind = "store_unavailable"

    def __init__(self, message: str = "", *, away: bool = False) -> None:
        super().__init__(message)
        self.away = away
        """The store's server could not be reached (down, restarting, a network cut), or a
        SQLite store's lock was held by another process past the busy timeout: it may answer
        later. False for a refusal that waiting does not change (a wrong password, a
        missing database, a schema newer than this code)."""
