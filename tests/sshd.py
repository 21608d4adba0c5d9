"""A real OpenSSH server on 127.0.0.1 for the Ansible SSH tests: its own keys, config and port.

Nothing of the system's sshd config is used (``-f`` our own file); the host key, the user key,
``authorized_keys``, ``known_hosts`` and the pid file all live in the test's tmp dir, and the
server is always stopped.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support import wait_until

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = "/run/sshd"


@dataclass(frozen=True)
class Sshd:
    port: int
    user: str
    user_key: Path
    """The private key whose public half is authorized."""
    known_hosts: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


@contextmanager
def sshd(tmp: Path) -> Iterator[Sshd]:
    """Start ``sshd -D`` for the current user on a free port; stop it whatever happens."""
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        raise RuntimeError(f"{SSHD} is missing: scripts/test.sh installs openssh-server")
    tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
    host_key, user_key = tmp / "host_key", tmp / "user_key"
    _keygen(host_key)
    _keygen(user_key)
    authorized = tmp / "authorized_keys"
    authorized.write_text(user_key.with_suffix(".pub").read_text())
    port = free_port()
    config = tmp / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"PidFile {tmp / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        "LogLevel ERROR\n"
    )
    host_pub = host_key.with_suffix(".pub").read_text().split()
    known = tmp / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    if os.geteuid() == 0:
        # as root sshd wants its privilege separation dir (Debian's service makes it at boot)
        Path(PRIVSEP_DIR).mkdir(mode=0o755, exist_ok=True)
    with (tmp / "sshd.log").open("wb") as errors:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=errors
        )
    try:
        wait_until(lambda: proc.poll() is not None or _accepts(port), 30, 0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(tmp / 'sshd.log').read_text()}")
        yield Sshd(port=port, user=getpass.getuser(), user_key=user_key, known_hosts=known)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
