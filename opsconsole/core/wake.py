"""The local wake-up channel: a submitter pokes idle workers on this host after its commit.

Workers bind the lowest free abstract unix datagram socket among a few names derived from
the store; a poke is one empty datagram to each name. The names come from the store file's
real path, so every spelling of one SQLite store (relative or absolute, through a symlinked
directory, with a ``?mode=`` query) reaches the same workers. A lost poke costs nothing but
latency: workers still poll. Linux only; elsewhere ``notify`` does nothing.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import select
import socket
import sys
import threading
from urllib.parse import unquote

SLOTS = 32
"""How many workers on one host can listen for pokes on one store."""

_SQLITE_SCHEMES = ("sqlite://", "sqlite+")


def store_key(store_url: str) -> str:
    """The one name of a store, whatever spelling of its URL is given.

    A SQLite file is named by its real path (symlinks resolved, relative paths taken from
    the current directory, the query dropped); any other store by its URL.
    """
    if not store_url.startswith(_SQLITE_SCHEMES):
        return store_url
    _, sep, rest = store_url.partition("://")
    path = unquote(rest[1:].partition("?")[0]) if sep and rest.startswith("/") else ""
    if not path or path == ":memory:" or path.startswith("file:"):
        return store_url
    return "sqlite:" + os.path.realpath(path)


@functools.lru_cache(maxsize=64)
def _names(store_url: str, cwd: str) -> tuple[bytes, ...]:
    # cwd is part of the cache key: a relative path names another file from elsewhere
    digest = hashlib.sha1(store_key(store_url).encode()).hexdigest()[:16]
    return tuple(f"\0opsconsole-{digest}-{i}".encode() for i in range(SLOTS))


def names(store_url: str) -> tuple[bytes, ...]:
    """The abstract socket names the workers of this store listen on (computed once)."""
    return _names(store_url, os.getcwd())


def supported() -> bool:
    return sys.platform.startswith("linux")


_sender: socket.socket | None = None
_sender_lock = threading.Lock()


def _socket() -> socket.socket:
    """This process's one sending socket (unbound: sharing it across threads is safe)."""
    global _sender
    sock = _sender
    if sock is None:
        with _sender_lock:
            if _sender is None:
                _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                _sender.setblocking(False)
                atexit.register(_sender.close)
            sock = _sender
    return sock


_highest: dict[tuple[bytes, ...], int] = {}
"""Per store, the highest name that took this process's last poke (-1: none did)."""


def notify(store_url: str) -> int:
    """Poke every listening worker; returns how many received it.

    A poke to a name nobody binds costs a refused system call, and 32 of them cost more
    than the rest of a submit. A listener binds the lowest free name, so a new one takes a
    gap below the highest live name or the name just above it: a poke goes to every name
    up to one past the highest that took the previous poke (all of them the first time).
    Only a second worker starting between two pokes of one process misses one (it polls).
    """
    if not supported():
        return 0
    every = names(store_url)
    last = _highest.get(every, SLOTS - 1)
    sent, top = 0, -1
    sendto = _socket().sendto
    for i in range(min(last + 2, SLOTS)):
        try:
            sendto(b"", every[i])
            sent += 1
        except (ConnectionRefusedError, FileNotFoundError):
            continue  # nobody listens there
        except OSError:
            pass  # a full queue: that worker is awake anyway
        top = i
    _highest[every] = top
    return sent


class Listener:
    """A worker's end of the channel."""

    def __init__(self, store_url: str) -> None:
        self.sock: socket.socket | None = None
        if not supported():
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for name in names(store_url):
            try:
                sock.bind(name)
            except OSError:
                continue
            sock.setblocking(False)
            self.sock = sock
            return
        sock.close()

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a poke; drain all queued pokes.

        Safe against ``close`` from another thread: a closed listener just reports no poke.
        """
        sock = self.sock
        if sock is None:
            return False
        try:
            ready, _, _ = select.select([sock], [], [], max(0.0, timeout))
            if not ready:
                return False
            while True:
                sock.recv(16)
        except BlockingIOError:
            return True  # drained
        except (OSError, ValueError):
            return False  # closed under us

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
