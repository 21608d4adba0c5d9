"""The public Python API: submit, wait for and inspect jobs from a program.

    import opsconsole
    from opsconsole.api import SubmitRequest

    with opsconsole.connect() as ops:               # the CLI's settings: env, toml, defaults
        job = ops.submit("restart-service", {"host": "web1"})
        done = ops.wait(job, timeout=600)           # raises TimeoutError past 600 s
        print(done.state, done.exit_code)

Everything here is a thin, stable surface over ``OpsService`` (the same one the CLI and the
console call), so a program gets the same validation, audit, four-eyes rule and wake-ups as
an operator. The actor is always the OS account of the calling process, as for every face:
a program cannot claim to be someone else. ``Client.service`` is the whole service for what
this module does not wrap; it is not covered by this module's stability promise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opsconsole.config import Settings, load_settings
from opsconsole.core.errors import (
    Conflict,
    Forbidden,
    InvalidParams,
    InvalidTransition,
    NotFound,
    OpsError,
    StoreUnavailable,
)
from opsconsole.core.service import ListRequest, SubmitRequest
from opsconsole.core.states import FINAL, LIVE, JobState
from opsconsole.core.views import JobView, LogLine, Page

if TYPE_CHECKING:
    from opsconsole.core.service import OpsService

__all__ = [
    "FINAL",
    "LIVE",
    "Client",
    "Conflict",
    "Forbidden",
    "InvalidParams",
    "InvalidTransition",
    "JobState",
    "JobView",
    "ListRequest",
    "LogLine",
    "NotFound",
    "OpsError",
    "Page",
    "StoreUnavailable",
    "SubmitRequest",
    "connect",
]

SQLITE_WAIT_INTERVAL = 0.02
"""Seconds between looks while waiting on a SQLite store: nothing tells another process
that a job ended there, and a look is a few indexed reads of a local file."""

NOTIFIED_WAIT_INTERVAL = 1.0
"""Seconds between looks on PostgreSQL, where the store's notifications wake the waiter at
once: this only bounds a lost notification."""

JobRef = str | JobView
"""A job by its id, a unique prefix of it, or a view of it."""


def _ref(job: JobRef) -> str:
    return job.id if isinstance(job, JobView) else job


class Client:
    """A connection to one store: submit, wait, get, list, cancel, read logs; then close.

    Thread-safe like ``OpsService`` (each call is its own short transaction). Use it as a
    context manager, or call ``close`` when done: it holds the store's connection pool.
    """

    def __init__(self, service: OpsService) -> None:
        self.service = service
        """The full ``OpsService`` behind this client (everything the CLI can do)."""
        self._closed = threading.Event()

    @property
    def settings(self) -> Settings:
        return self.service.settings

    def submit(
        self, request: SubmitRequest | str, params: Mapping[str, Any] | None = None
    ) -> JobView:
        """Validate and enqueue a job; idle workers on this host (SQLite) or every host
        (PostgreSQL) are woken at once.

        ``request`` is a template name (then ``params`` are its parameters: typed values or
        the strings a command line would pass) or a full ``SubmitRequest`` for priority,
        run time, dependencies, retries, timeout, tags or a dry run.
        """
        if isinstance(request, str):
            request = SubmitRequest(request, dict(params or {}))
        elif params is not None:
            raise InvalidParams("give params inside the SubmitRequest, not beside it")
        return self.service.submit(request)

    def get(self, job: JobRef, *, with_events: bool = False) -> JobView:
        """The job now (``with_events``: its audit trail too)."""
        return self.service.get(_ref(job), with_events=with_events)

    def list_jobs(self, request: ListRequest | None = None) -> Page:
        """One page of jobs, newest first, filtered as ``jobs list`` filters."""
        return self.service.list_jobs(request or ListRequest())

    def wait(self, job: JobRef, *, timeout: float) -> JobView:
        """Block until the job is final; returns its final view.

        Raises ``TimeoutError`` when it is not final after ``timeout`` seconds (the job goes
        on: cancel it if it should not). On PostgreSQL the store's notifications wake the
        waiter as soon as the job changes; on SQLite it looks every
        ``SQLITE_WAIT_INTERVAL`` seconds.
        """
        if timeout < 0:
            raise InvalidParams("timeout must be >= 0 seconds")
        local = self.service.embedded_store
        interval = SQLITE_WAIT_INTERVAL if local else NOTIFIED_WAIT_INTERVAL
        start = time.monotonic()
        view = self.service.wait(_ref(job), timeout=timeout, interval=interval)
        if view.state not in FINAL:
            waited = time.monotonic() - start
            raise TimeoutError(
                f"job {view.id} is still {view.state.value} after {waited:.1f} s of waiting"
            )
        return view

    def cancel(self, job: JobRef, *, reason: str = "") -> JobView:
        """Cancel a pending job at once, or ask its worker to stop a running one."""
        return self.service.cancel(_ref(job), reason=reason)

    def logs(self, job: JobRef, after: int = 0, *, limit: int = 1000) -> list[LogLine]:
        """Log lines after line number ``after`` (secrets already redacted)."""
        return self.service.logs_since(_ref(job), after, limit=limit)

    def close(self) -> None:
        """Release the store's connections; idempotent."""
        if not self._closed.is_set():
            self._closed.set()
            self.service.db.dispose()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect(
    db: str | Path | None = None,
    *,
    home: str | Path | None = None,
    catalog: str | Path | None = None,
    settings: Settings | None = None,
) -> Client:
    """Open the store (migrating a new or older one, as any command does) and return a client.

    Arguments left out come as for the CLI: ``OPSCONSOLE_*`` variables, ``opsconsole.toml``,
    then the defaults. ``db`` is a store URL or a bare SQLite path. ``settings`` (from
    ``opsconsole.config.load_settings``) replaces all of that when a program has its own.
    """
    from opsconsole.runtime import open_service

    if settings is None:
        settings = load_settings(
            db=None if db is None else str(db),
            home=home,
            catalog=catalog,
        )
    elif db is not None or home is not None or catalog is not None:
        raise InvalidParams("give either settings or db/home/catalog, not both")
    return Client(open_service(settings))
