"""The local wake-up channel: a submitter pokes idle workers on this host after its commit.

Workers bind the lowest free abstract unix datagram socket among a few names derived from
the store URL; a poke is one empty datagram to each name. A lost poke costs nothing but
latency: workers still poll. Linux only; elsewhere ``notify`` does nothing.
"""

from __future__ import annotations

import hashlib
import select
import socket
import sys

SLOTS = 32
"""How many workers on one host can listen for pokes on one store."""


def _name(store_url: str, i: int) -> bytes:
    digest = hashlib.sha1(store_url.encode()).hexdigest()[:16]
    return f"\0opsconsole-{digest}-{i}".encode()


def supported() -> bool:
    return sys.platform.startswith("linux")


def notify(store_url: str) -> int:
    """Poke every listening worker; returns how many received it."""
    if not supported():
        return 0
    sent = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for i in range(SLOTS):
            try:
                sock.sendto(b"", _name(store_url, i))
                sent += 1
            except (ConnectionRefusedError, FileNotFoundError):
                continue
            except (BlockingIOError, OSError):
                continue  # a full queue means that worker is awake anyway
    return sent


class Listener:
    """A worker's end of the channel."""

    def __init__(self, store_url: str) -> None:
        self.sock: socket.socket | None = None
        if not supported():
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for i in range(SLOTS):
            try:
                sock.bind(_name(store_url, i))
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
