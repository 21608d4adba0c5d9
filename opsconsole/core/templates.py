"""The catalog as read models, with no store: what ``templates list|show`` and completion use.

The only place a ``Template`` becomes a ``TemplateView`` (secret defaults masked). It needs
the catalog and nothing else, so the commands that only read templates never import the
store or SQLAlchemy. ``OpsService`` offers the same methods through ``CatalogReports``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from opsconsole.core.catalog import Catalog, Template
from opsconsole.core.secrets import MASK
from opsconsole.core.views import ParamView, TemplateView

if TYPE_CHECKING:
    from opsconsole.config import Settings


class CatalogReports:
    """The catalog's read models, for any class that has a ``catalog``."""

    if TYPE_CHECKING:

        @property
        def catalog(self) -> Catalog: ...

    def templates(self) -> list[TemplateView]:
        return [template_view(self.catalog.get(n)) for n in self.catalog.names()]

    def template(self, name: str) -> TemplateView:
        return template_view(self.catalog.get(name))

    def catalog_problems(self) -> list[str]:
        """Each broken template file, and why the catalog cannot be read if it cannot."""
        return [str(p) for p in self.catalog.problems]

    def catalog_error(self) -> str | None:
        """Why the catalog as a whole cannot be read (also among the problems), or None."""
        error = self.catalog.error
        return None if error is None else error.message


class CatalogReader(CatalogReports):
    """The catalog alone, loaded on first use: built by ``runtime.open_catalog``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog.load(Path(self.settings.catalog))
        return self._catalog


def template_view(t: Template) -> TemplateView:
    return TemplateView(
        runs=t.what_runs(),
        name=t.name,
        description=t.description,
        runner=t.runner,
        params=[
            ParamView(
                name=p.name,
                type=p.type.value,
                required=p.required,
                default=MASK if p.secret and p.default not in (None, "") else p.default,
                secret=p.secret,
                description=p.description,
                choices=list(p.choices),
                pattern=p.pattern,
                min=p.min,
                max=p.max,
            )
            for p in t.params.values()
        ],
        priority=t.priority,
        timeout_s=t.timeout_s,
        retries=t.retries,
        backoff_s=t.backoff_s,
        concurrency_key=t.concurrency_key,
        concurrency_limit=t.concurrency_limit,
        on_interrupt=t.on_interrupt,
        tags=list(t.tags),
        source=t.source,
        command=list(t.command) if t.command is not None else None,
        handler=t.handler,
    )
