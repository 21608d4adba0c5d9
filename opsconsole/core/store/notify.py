"""PostgreSQL wake-ups: one dedicated LISTEN connection per process and store, in a thread.

Event-writing transactions NOTIFY at commit (``db.write_events``); this module is the only
place that listens. Subscribers (a pool's claimer, the console's feed, ``--follow``) are
called on the listener's thread and must only set a flag or wake a condition. Wake-ups only
make things faster: every subscriber still polls, so a lost connection costs latency, not
work. It is retried with backoff, said once in the log and in ``problem`` (which a worker's
heartbeat writes to its row, for ``health``), and on reconnecting every subscriber is woken,
as the notifications sent meanwhile are gone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsconsole.core.store.db import CHANNEL

if TYPE_CHECKING:
    from opsconsole.core.store.db import Database

log = logging.getLogger("opsconsole.store")

APPLICATION_NAME = "opsconsole-listen"
"""The LISTEN connection's ``application_name`` in ``pg_stat_activity``."""
RETRY_FIRST = 0.2
"""Seconds before the first reconnect; each failure doubles the wait."""
RETRY_MAX = 5.0
"""The longest wait between two reconnects."""
CONNECT_TIMEOUT = 5
"""Seconds a connect may take before it counts as failed (a dead server is found fast)."""
WAKE_EVERY = 0.1
"""Seconds between two looks at the stop flag while no notification comes: how long an
unsubscribe waits for the connection to close (a local wait, no round trip to the server)."""


@dataclass(frozen=True)
class Change:
    """What one notification says (``db.change_payload`` writes it)."""

    event: int
    """The newest event id of the committed transaction (0: unknown)."""
    ready: bool
    """A job became ready to claim."""
    ended: bool
    """A job ended or left its slot: its key, team slot or dependents are free."""
    cancel: bool
    """A running job was asked to stop."""

    @classmethod
    def parse(cls, payload: str) -> Change:
        top, _, flags = payload.partition(" ")
        try:
            event = int(top)
        except ValueError:
            return ANYTHING  # not ours (someone's NOTIFY by hand): look at everything
        return cls(event, "q" in flags, "e" in flags, "c" in flags)


ANYTHING = Change(0, True, True, True)
"""What subscribers hear after a reconnect: anything may have changed meanwhile."""

Subscriber = Callable[[Change], None]


class Listener:
    """The LISTEN connection of one store, with its subscribers."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        """Set while the connection is up and listening."""
        self.backend_pid: int | None = None
        """The server process of the connection (for ``pg_stat_activity``)."""
        self.reconnects = 0
        """How many times the connection was made again after it was lost."""
        self._problem: str | None = None

    @property
    def problem(self) -> str | None:
        """Why wake-ups do not arrive right now; None while they do."""
        return self._problem

    def subscribe(self, fn: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(fn)

    def unsubscribe(self, fn: Subscriber) -> bool:
        """Remove ``fn``; True if no subscriber is left."""
        with self._lock:
            if fn in self._subscribers:
                self._subscribers.remove(fn)
            return not self._subscribers

    def start(self) -> Listener:
        self._thread = threading.Thread(target=self._run, name="store-listen", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2 * WAKE_EVERY + 1) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _deliver(self, change: Change) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(change)
            except Exception:  # one bad subscriber must not silence the others
                log.exception("a wake-up subscriber failed")

    def _connect(self) -> Any:
        import psycopg

        _args, kwargs = self.db.engine.dialect.create_connect_args(self.db.url)
        kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
        kwargs["application_name"] = APPLICATION_NAME
        conn = psycopg.connect(autocommit=True, **kwargs)
        try:
            conn.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            conn.close()  # connected but not listening: closed here, not by the collector
            raise
        return conn

    def _run(self) -> None:
        failures = 0
        down_since: float | None = None
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except Exception as exc:  # any failure: said, retried; this thread never ends
                failures += 1
                down_since = self._lost(exc, down_since)
                self._stop.wait(min(RETRY_FIRST * 2 ** min(failures - 1, 30), RETRY_MAX))
                continue
            failures = 0
            try:
                self.backend_pid = conn.info.backend_pid
                self.connected.set()
                if down_since is not None:
                    self.reconnects += 1
                    log.warning(
                        "wake-ups from store %s work again (after %.1fs)",
                        self.db.describe(),
                        time.monotonic() - down_since,
                    )
                    down_since = None
                    self._problem = None
                    self._deliver(ANYTHING)  # what was sent meanwhile is lost
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=WAKE_EVERY):
                        self._deliver(Change.parse(note.payload))
            except Exception as exc:  # a lost server, or anything else: said, retried
                self.connected.clear()
                down_since = self._lost(exc, down_since)
                self._stop.wait(RETRY_FIRST)
            finally:
                self.connected.clear()
                conn.close()  # a broken connection closes without a word

    def _lost(self, exc: Exception, since: float | None) -> float:
        """Say once per outage that wake-ups are lost; returns when the outage began."""
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        self._problem = (
            f"the LISTEN connection to store {self.db.describe()} is down ({reason}): "
            "reconnecting; new work is found by polling meanwhile"
        )
        if since is None:
            log.warning("%s", self._problem)
            return time.monotonic()
        return since


_listeners: dict[str, Listener] = {}
_registry = threading.Lock()


def subscribe(db: Database, fn: Subscriber) -> Callable[[], None]:
    """Call ``fn`` on each change another transaction commits to ``db``'s store.

    One listener per process and store URL, started by its first subscriber and stopped
    with its last. Returns the function that unsubscribes. On other stores than PostgreSQL
    nothing is called (SQLite's workers have the local datagram of ``core.wake``).
    """
    if db.dialect != "postgresql":
        return lambda: None
    key = db.url.render_as_string(hide_password=False)
    with _registry:
        listener = _listeners.get(key)
        if listener is None:
            listener = _listeners[key] = Listener(db).start()
        listener.subscribe(fn)

    def unsubscribe() -> None:
        with _registry:
            if listener.unsubscribe(fn) and _listeners.get(key) is listener:
                del _listeners[key]
            else:
                return
        listener.stop()

    return unsubscribe


def listener_of(db: Database) -> Listener | None:
    """This process's listener of ``db``'s store, if anything subscribed to it."""
    with _registry:
        return _listeners.get(db.url.render_as_string(hide_password=False))


def wait_connected(db: Database, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds until this process listens to ``db``'s store, so that a
    pool that has started hears the next commit; False if it does not (polling works)."""
    listener = listener_of(db)
    return listener is not None and listener.connected.wait(timeout)


def problem(db: Database) -> str | None:
    """Why wake-ups from ``db``'s store do not arrive in this process; None when they do."""
    listener = listener_of(db)
    return listener.problem if listener is not None else None
