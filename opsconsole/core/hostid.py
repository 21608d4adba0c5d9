"""This machine's identity in the store: which workers share a process table.

The reaper may only kill a job's process group on the machine that runs it, and must know
when a whole machine went quiet. A hostname is not enough for that: containers on one
machine may share a hostname, and a container's hostname changes with each run. So the
identity is the hostname plus the machine id (``/etc/machine-id``, else the kernel's boot
id), which stay the same for every process of one machine (or one container image run).
``OPSCONSOLE_HOST_ID`` overrides it (tests run two "hosts" on one machine with it).
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path

HOST_ID_ENV = "OPSCONSOLE_HOST_ID"
"""The environment variable that names this host outright (e.g. in tests, or where two
machines were cloned with one machine id)."""
MAX_LENGTH = 128
"""``workers.host_id`` holds this many characters."""
ID_FILES = (
    Path("/etc/machine-id"),
    Path("/var/lib/dbus/machine-id"),
    Path("/proc/sys/kernel/random/boot_id"),
)
"""Where the machine's id is read, first found wins: the boot id changes at each boot, which
is still right for the reaper (a process of an earlier boot is gone)."""


def machine_id(files: tuple[Path, ...] = ID_FILES) -> str:
    """The first non-empty id of ``files`` (dashes dropped), or "" when there is none."""
    for path in files:
        try:
            text = path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            continue
        if text:
            return text.replace("-", "")
    return ""


@functools.cache
def _this_machine() -> str:
    """This machine's id, read once per process (``workers`` asks for it per row)."""
    return machine_id(ID_FILES)


def host_id(files: tuple[Path, ...] = ID_FILES) -> str:
    """``hostname/machine-id`` (or the override); readable first, unique by the id."""
    override = os.environ.get(HOST_ID_ENV, "").strip()
    if override:
        return override[:MAX_LENGTH]
    name = socket.gethostname()
    mid = _this_machine() if files is ID_FILES else machine_id(files)
    return (f"{name}/{mid}" if mid else name)[:MAX_LENGTH]


def host_name() -> str:
    """The readable part of this host's identity: the hostname, or the override as given."""
    override = os.environ.get(HOST_ID_ENV, "").strip()
    return override.split("/", 1)[0][:64] if override else socket.gethostname()


def pid_exists(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (one of another user counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
