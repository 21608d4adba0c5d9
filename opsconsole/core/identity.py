"""Who is acting: the OS account of this process, as the system database knows it.

The only place that answers "who is this?". Never ``$USER``/``$LOGNAME``, a flag or a config
value: anyone can set those, while the kernel's uid of the process is what the operator
logged in as (``sudo``/``runuser`` change it, and that is the point of them).
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """An account and the groups the system database lists for it."""

    uid: int
    name: str
    groups: frozenset[str]

    def is_user(self, name: str) -> bool:
        return self.name == name

    def in_group(self, name: str) -> bool:
        return name in self.groups


def user_name(uid: int) -> str:
    """The account name of ``uid``, or ``uid:N`` for a uid the system database does not know."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def for_uid(uid: int) -> Identity:
    """The identity of ``uid``: its name and every group ``/etc/group`` (or NSS) gives it.

    Groups come from the database (``getgrouplist``), not from this process's supplementary
    groups, so a process that dropped or never picked up a group still counts as a member
    the same way for every face, and ``newgrp`` tricks change nothing.
    """
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return Identity(uid=uid, name=f"uid:{uid}", groups=frozenset())
    names: set[str] = set()
    for gid in os.getgrouplist(entry.pw_name, entry.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            names.add(str(gid))
    return Identity(uid=uid, name=entry.pw_name, groups=frozenset(names))


def current() -> Identity:
    """The identity of this process (its real uid: a setuid wrapper does not make it root)."""
    return for_uid(os.getuid())


def os_user() -> str:
    """The name recorded as the actor of what this process does."""
    return user_name(os.getuid())
