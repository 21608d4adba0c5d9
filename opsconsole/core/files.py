"""Who may read opsconsole's state files: the state directory, the store file, the secret key.

The only place that decides their modes: private to the user (directory 0700, files 0600)
by default, or shared with one group (setgid directory 2770, files 0660, that group) when
``share_group`` is set. Modes are set on the file just created (``os.open``/``mkdir`` then
``fchmod``/``chmod``), never by changing the umask, which every thread of a process shares.
"""

from __future__ import annotations

import grp
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from opsconsole.core.errors import InvalidParams


@dataclass(frozen=True)
class Access:
    """Who may read the state: the user alone, or the user and one group."""

    group: str = ""
    gid: int | None = None

    @property
    def shared(self) -> bool:
        return self.gid is not None

    @property
    def dir_mode(self) -> int:
        # setgid: files created inside (SQLite's -wal and -shm included) get the group
        return 0o2770 if self.shared else 0o700

    @property
    def file_mode(self) -> int:
        return 0o660 if self.shared else 0o600

    @property
    def key_mode(self) -> int:
        """The key is read by the group's operators but only ever written by its creator."""
        return 0o640 if self.shared else 0o600


PRIVATE = Access()


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def access_for(share_group: str) -> Access:
    """The access the ``share_group`` setting asks for; an unknown group is refused."""
    name = share_group.strip()
    if not name:
        return PRIVATE
    try:
        entry = grp.getgrgid(int(name)) if name.isdigit() else grp.getgrnam(name)
    except (KeyError, OverflowError):
        raise InvalidParams(f"share_group: no group '{name[:40]}' on this host") from None
    return Access(group=entry.gr_name, gid=entry.gr_gid)


def make_dir(path: Path, access: Access, *, parents: bool = False) -> bool:
    """Create the directory ``path`` with the access's mode; False when it already exists.

    Missing parents are created only when asked (the default home), private to the user
    (or readable, not writable, by the shared group), so a mistyped path never grows a tree.
    Without ``parents``, a missing parent raises FileNotFoundError.
    """
    if parents:
        for parent in reversed(path.parents):  # the outermost first
            if not parent.exists():
                _mkdir(parent, 0o750 if access.shared else 0o700, access)
    return _mkdir(path, access.dir_mode, access)


def _mkdir(path: Path, mode: int, access: Access) -> bool:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return False
    try:
        if access.gid is not None:
            os.chown(path, -1, access.gid)
        os.chmod(path, mode)  # mkdir's mode passes through the umask and drops setgid
    except PermissionError:
        os.rmdir(path)
        raise InvalidParams(
            f"cannot give {path} to group {access.group}: this user is not in that group"
        ) from None
    return True


def create_file(path: Path, mode: int, access: Access) -> bool:
    """Create an empty ``path`` with exactly ``mode`` (and the shared group); False if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0)
    except FileExistsError:
        return False
    try:
        if access.gid is not None:
            os.fchown(fd, -1, access.gid)
        os.fchmod(fd, mode)
    except PermissionError:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise InvalidParams(
            f"cannot give {path} to group {access.group}: this user is not in that group"
        ) from None
    os.close(fd)
    return True


def exposure(path: Path, access: Access, wanted: int) -> str | None:
    """Who can read ``path`` beyond ``wanted`` and the access's group, or None if nobody."""
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    extra = mode & 0o077 & ~wanted
    wrong_group = access.shared and st.st_gid != access.gid and mode & 0o070
    if not extra and not wrong_group:
        return None
    who = []
    if extra & 0o070 or wrong_group:
        who.append(f"group {group_name(st.st_gid)}")
    if extra & 0o007:
        who.append("every local user")
    return f"{path} is open to {' and '.join(who)} (mode {mode:04o})"


def tighten(path: Path, access: Access, wanted: int) -> str | None:
    """Give an existing file no more access than ``wanted``; what was done, or None if nothing.

    A file this user does not own cannot be changed: the message then says who must do it.
    """
    problem = exposure(path, access, wanted)
    if problem is None:
        return None
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    new = mode & (wanted | 0o700)
    try:
        if access.gid is not None and st.st_gid != access.gid:
            os.chown(path, -1, access.gid)
        os.chmod(path, new)
    except PermissionError:
        return f"{problem}, and only its owner can change that: {fix(path, access, wanted)}"
    return f"{problem}: made it {new:04o}" + (f" for group {access.group}" if access.shared else "")


def fix(path: Path, access: Access, wanted: int) -> str:
    """The command that gives ``path`` the access it should have."""
    chmod = f"chmod {wanted:o} {path}"
    return f"chgrp {access.group} {path} && {chmod}" if access.shared else chmod


def remove_tree(path: Path) -> str | None:
    """Remove a directory and all it holds; why not, in one line, when something stays.

    A run's private directory can hold what a job was given: it must go, and if it cannot,
    someone must hear it (``shutil.rmtree(ignore_errors=True)`` would say nothing).
    """
    failed: list[str] = []

    def note(_func: object, failed_path: str, _exc: object) -> None:
        failed.append(failed_path)

    shutil.rmtree(path, onerror=note)
    if not failed and not path.exists():
        return None
    first = failed[0] if failed else str(path)
    return f"cannot remove {path} ({len(failed) or 1} path(s) left, first {first}): remove it"
