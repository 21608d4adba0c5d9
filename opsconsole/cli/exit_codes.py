"""Exit codes, and the one place an OpsError becomes a line on stderr and a code."""

from __future__ import annotations

import sys
from enum import IntEnum

from opsconsole.core.errors import (
    Conflict,
    Forbidden,
    InvalidParams,
    InvalidTransition,
    NotFound,
    OpsError,
    StoreUnavailable,
)


class ExitCode(IntEnum):
    OK = 0
    """Success; for ``--wait`` and ``jobs wait``: the job succeeded."""
    JOB_FAILED = 1
    """The job ended in any state but succeeded (or ``health``: not healthy; ``db check``: a
    check failed; ``worker --once``: a job did not succeed; a bulk ``jobs cancel``/``jobs
    retry``: some matches were skipped, or the prompt was declined)."""
    USAGE = 2
    """Bad usage or invalid input; one line on stderr, nothing stored."""
    NOT_FOUND = 3
    """No such job, template or worker."""
    FORBIDDEN = 4
    """The actor may not do this."""
    STORE_UNAVAILABLE = 5
    """The store cannot be reached, or its schema is newer than this opsconsole."""
    INTERNAL = 70
    """A bug in opsconsole: rerun with ``-v`` for the traceback and report it."""
    WAIT_TIMEOUT = 124
    """``jobs wait --timeout`` gave up: the job has not ended (the code GNU ``timeout`` uses)."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C (a job being waited for or followed keeps running)."""


_CODES: list[tuple[type[OpsError], ExitCode]] = [
    (NotFound, ExitCode.NOT_FOUND),
    (Forbidden, ExitCode.FORBIDDEN),
    (StoreUnavailable, ExitCode.STORE_UNAVAILABLE),
    (InvalidParams, ExitCode.USAGE),
    (InvalidTransition, ExitCode.USAGE),
    (Conflict, ExitCode.USAGE),
]


def code_for(exc: OpsError) -> ExitCode:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return ExitCode.USAGE


def fail(message: str) -> None:
    """Write the one line an operator sees for an error (never a traceback).

    The message can quote what was typed or stored (a job prefix, a template name, a file
    name), so unsafe characters are shown escaped, as on stdout.
    """
    from opsconsole.core.text import visible

    # shown first, so only real line breaks and spaces fold into the one line
    text = " ".join(visible(str(message), multiline=True).split()) or "error"
    sys.stderr.write(f"opsconsole: error: {text}\n")
    sys.stderr.flush()
