"""Where the catalog's files may live: the only place that decides a path is inside the catalog.

A program, a template file or a handler module the catalog names must resolve, after every
symbolic link and ``..`` is followed, inside the catalog directory (itself resolved), so
neither a link nor a path in a template makes a job run or load code the catalog does not
hold. It resolves paths (``realpath``, ``lstat``) but never reads or runs a file.
"""

from __future__ import annotations

import os
from importlib.machinery import all_suffixes
from pathlib import Path

from opsconsole.core.errors import InvalidParams

_PATH_SHOW_MAX = 200


def real(path: str | os.PathLike[str]) -> str:
    """``path`` with every symbolic link and ``..`` resolved (missing tails kept as given)."""
    return os.path.realpath(path)


def is_inside(path: str, root: str) -> bool:
    """Whether the resolved ``path`` is ``root`` or below it (both already resolved)."""
    if path == root:
        return True
    return path.startswith(root if root.endswith(os.sep) else root + os.sep)


def show_path(path: str | os.PathLike[str]) -> str:
    """A path fit for a one-line message: control characters escaped, very long ones cut."""
    text = os.fspath(path)
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:_PATH_SHOW_MAX])
    return safe + ("…" if len(text) > _PATH_SHOW_MAX else "")


def program_path(program: str, catalog_dir: Path) -> str | None:
    """The program to exec for a shell template's ``command[0]``.

    A bare name (no ``/``) returns None: the child looks it up on PATH. Any other program is
    resolved against the catalog dir and returned resolved, so the caller execs exactly the
    file that was checked; one outside the catalog raises ``InvalidParams`` saying how to fix it.
    """
    if "/" not in program:
        return None
    root = real(catalog_dir)
    resolved = real(os.path.join(root, program))  # an absolute program ignores root
    if is_inside(resolved, root):
        return resolved
    base = os.path.basename(program.rstrip("/")) or program
    raise InvalidParams(
        f"program '{show_path(program)}' resolves to {show_path(resolved)}, outside the "
        f"catalog {show_path(root)}: use the bare name '{show_path(base)}' to run it from "
        "PATH, or put the script inside the catalog (links must point inside it too)"
    )


def check_handler_files(handler: str, catalog_dir: Path) -> None:
    """Refuse a handler whose module, or a package above it, is in the catalog dir but
    resolves outside it; modules found elsewhere on ``sys.path`` are not the catalog's."""
    module = handler.partition(":")[0]
    suffixes = all_suffixes()  # .py, .pyc and extension modules all import
    root = real(catalog_dir)
    here = root
    for part in module.split("."):
        here = os.path.join(here, part)
        init = os.path.join(here, "__init__")
        for candidate in (here, *(here + s for s in suffixes), *(init + s for s in suffixes)):
            if not os.path.lexists(candidate):
                continue
            resolved = real(candidate)
            if not is_inside(resolved, root):
                raise InvalidParams(
                    f"handler module file {show_path(candidate)} resolves to "
                    f"{show_path(resolved)}, outside the catalog {show_path(root)}: put the "
                    "module itself inside the catalog, or install it as a package"
                )
