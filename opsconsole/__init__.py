"""opsconsole: an operations console and durable job queue for the terminal.

``opsconsole.connect()`` is the Python API (``opsconsole/api.py``). Importing the package
imports nothing else: a CLI command or a program pays only for what it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from opsconsole.api import Client
    from opsconsole.config import Settings

__version__ = "0.1.0"
__all__ = ["__version__", "connect"]


def connect(
    db: str | Path | None = None,
    *,
    home: str | Path | None = None,
    catalog: str | Path | None = None,
    settings: Settings | None = None,
) -> Client:
    """Open a store and return a ``Client`` to submit, wait for and inspect jobs.

    See ``opsconsole.api.connect``. The API is imported on the first call, by name: every
    layer imports this package (for ``__version__``), and a static edge from here to the API
    (which assembles the store through ``runtime``) would make each of them depend on it.
    """
    import importlib

    api = importlib.import_module("opsconsole.api")
    client: Client = api.connect(db, home=home, catalog=catalog, settings=settings)
    return client
