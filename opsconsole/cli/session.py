"""The command line's session: the global options and the service, built on first use.

Command modules import ``service()`` (or ``catalog()``, for commands that only read
templates and must not open the store) from here, never from ``app`` (which imports them),
so the root app and its commands do not import each other.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsconsole.config import Settings
    from opsconsole.core.service import OpsService
    from opsconsole.core.templates import CatalogReader


class Session:
    """The options of this invocation and what they open, lazily."""

    def __init__(self) -> None:
        self.flags: dict[str, Any] = {}
        self.verbose = False
        self._settings: Settings | None = None
        self._service: OpsService | None = None
        self._catalog: CatalogReader | None = None

    def reset(self, flags: dict[str, Any], verbose: bool) -> None:
        self.close()
        self.flags = flags
        self.verbose = verbose
        STDERR_LOG.verbose = verbose
        self._settings = None
        self._service = None
        self._catalog = None

    def settings(self) -> Settings:
        if self._settings is None:
            from opsconsole.config import load_settings

            self._settings = load_settings(**self.flags)
        return self._settings

    def service(self) -> OpsService:
        if self._service is None:
            from opsconsole.runtime import open_service

            self._service = open_service(self.settings(), notice=notice)
        return self._service

    def close(self) -> None:
        """Close the store's connections when the command ends.

        A PostgreSQL server otherwise sees the command's sessions drop without goodbye (and
        logs each one); a process that runs many commands (a test, a script host) would
        keep their connections open.
        """
        if self._service is not None:
            service, self._service = self._service, None
            service.db.dispose()

    def catalog(self) -> CatalogReader:
        """The template catalog without the store: no SQLAlchemy, no schema check."""
        if self._catalog is None:
            from opsconsole.runtime import open_catalog

            self._catalog = open_catalog(self.settings())
        return self._catalog


def notice(text: str, *, transient: bool = False) -> None:
    """What the store says that is not an error (a new store, files made private): stderr.

    A passing wait (a locked store) goes to stderr only on a terminal, where someone is
    watching; otherwise to the log, which a worker writes and a script's command does not.
    """
    if transient and not sys.stderr.isatty():
        logging.getLogger("opsconsole.store").info("%s", text)
        return
    sys.stderr.write(f"opsconsole: {text}\n")
    sys.stderr.flush()


class OneLineLog(logging.Handler):
    """Warnings and errors that a library or the store logs during a command: one line each
    on stderr, ``opsconsole: `` first, the exception's type and message instead of its
    traceback (the traceback too with ``-v``).

    Without it, Python's last-resort handler writes such a record as it is, traceback and
    all, under the command's own output (the SQLAlchemy pool's "Exception during reset or
    similar" after a Ctrl-C did). The console-script entry point (``app.main``) installs it;
    ``opsconsole worker`` replaces it with its own log.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.verbose = False

    def emit(self, record: logging.LogRecord) -> None:
        from opsconsole.core.text import visible

        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                said = (str(exc).strip().splitlines() or [""])[0]
                text = f"{text} ({type(exc).__name__}: {said})" if said else f"{text} ({exc!r})"
            lines = text.splitlines() or [""]
            shown = text if self.verbose else lines[0]
            if self.verbose and record.exc_info:
                shown = f"{shown}\n{logging.Formatter().formatException(record.exc_info)}"
            sys.stderr.write(f"opsconsole: {visible(shown, multiline=self.verbose)}\n")
            sys.stderr.flush()
        except OSError:  # a closed stderr (the reader went away): nowhere left to tell
            pass


STDERR_LOG = OneLineLog()
"""The command line's log handler on the root logger (``OneLineLog``)."""

STATE = Session()


def service() -> OpsService:
    return STATE.service()


def catalog() -> CatalogReader:
    return STATE.catalog()


def settings() -> Settings:
    return STATE.settings()
