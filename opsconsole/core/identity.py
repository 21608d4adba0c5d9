"""Who is acting: the OS account of this process (not ``$USER``, which anyone can set)."""

from __future__ import annotations

import os
import pwd


def os_user() -> str:
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"
