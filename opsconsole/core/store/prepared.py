"""Statements compiled once per dialect and run on the driver's cursor: the hot paths' way in.

For a small insert SQLAlchemy's ``Connection.execute`` costs several times the CPU of the
database's own work (measured on SQLite: ~110 us against ~15 us), and a submit runs several.
A statement the store runs for every job is built from the Core tables once, compiled once
per dialect here, its parameters converted by the columns' own bind processors (so the
values stored are exactly SQLAlchemy's), and run on the DBAPI connection of the caller's
transaction. Driver errors come out as SQLAlchemy's (``sa.exc.DBAPIError`` subclasses), so
``Database.write()`` treats them as it treats any other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.expression import Executable

Processor = Callable[[Any], Any] | None


@dataclass
class Compiled:
    """One statement as one dialect runs it: its SQL text and how to bind its parameters."""

    sql: str
    names: tuple[str, ...]
    """The parameters' names, in the order a positional paramstyle takes them."""
    binds: tuple[Processor, ...]
    positional: bool
    columns: tuple[str, ...]
    """The names of the columns it returns (none for a statement that returns nothing)."""
    types: tuple[Any, ...]
    results: tuple[Processor, ...] | None = None
    """Set at the first run: a driver's processor may depend on the type it reports."""

    def parameters(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters for ``values`` (a tuple or a dict, by paramstyle)."""
        out = [
            v if proc is None or v is None else proc(v)
            for proc, v in zip(self.binds, [values[n] for n in self.names], strict=True)
        ]
        return tuple(out) if self.positional else dict(zip(self.names, out, strict=True))

    def rows(self, cursor: Any, dialect: Dialect) -> list[dict[str, Any]]:
        """The rows ``cursor`` returns as SQLAlchemy would give them: by name, processed."""
        found = cursor.fetchall()
        results = self.results
        if results is None:
            codes = [d[1] for d in cursor.description]
            results = self.results = tuple(
                t.dialect_impl(dialect).result_processor(dialect, code)
                for t, code in zip(self.types, codes, strict=True)
            )
        return [
            {
                name: v if proc is None or v is None else proc(v)
                for name, proc, v in zip(self.columns, results, raw, strict=True)
            }
            for raw in found
        ]


class Prepared:
    """A statement built once, compiled at first use for each dialect it meets.

    ``build`` takes the dialect's name (an upsert is spelled per dialect); ``keys`` are the
    columns an INSERT binds (all of them, in a fixed order, so one compiled form fits
    every row).
    """

    def __init__(
        self, build: Callable[[str], Executable], *, keys: Sequence[str] | None = None
    ) -> None:
        self._build = build
        self._keys = list(keys) if keys is not None else None
        self._compiled: dict[str, Compiled] = {}

    def compiled(self, dialect: Dialect) -> Compiled:
        done = self._compiled.get(dialect.name)
        if done is None:
            done = self._compiled[dialect.name] = self._compile(dialect)
        return done

    def _compile(self, dialect: Dialect) -> Compiled:
        stmt = self._build(dialect.name)
        c = stmt.compile(dialect=dialect, column_keys=self._keys)  # type: ignore[attr-defined]
        positional = bool(c.positional)
        names = tuple(c.positiontup or ()) if positional else tuple(c.binds)
        binds = tuple(_bind_processor(c.binds[n].type, dialect) for n in names)
        # what an INSERT or UPDATE returns; other statements are run for their effect
        returned = list(stmt.exported_columns) if isinstance(stmt, UpdateBase) else []
        return Compiled(
            sql=c.string,
            names=names,
            binds=binds,
            positional=positional,
            columns=tuple(col.key for col in returned),
            types=tuple(col.type for col in returned),
        )

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run it once in ``conn``'s transaction; the rows it returns, processed."""
        c = self.compiled(conn.dialect)
        params = c.parameters(values)
        cursor = _call(conn, c.sql, params, lambda raw: raw.execute(c.sql, params))
        return c.rows(cursor, conn.dialect) if c.columns else []

    def execute_many(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run it once per row in one driver call (a statement that returns nothing)."""
        c = self.compiled(conn.dialect)
        params = [c.parameters(r) for r in rows]
        if params:
            _call(conn, c.sql, params, lambda raw: raw.cursor().executemany(c.sql, params))


def _call(conn: Connection, sql: str, params: Any, run: Callable[[Any], Any]) -> Any:
    """Run ``run`` on the driver connection of ``conn``; driver errors as SQLAlchemy's."""
    raw = conn.connection.driver_connection
    dbapi = conn.dialect.loaded_dbapi
    try:
        return run(raw)
    except dbapi.Error as exc:
        gone = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
        if gone:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            sql,
            params,
            exc,
            dbapi.Error,
            hide_parameters=True,
            connection_invalidated=gone,
            dialect=conn.dialect,
        ) from exc


def _bind_processor(type_: Any, dialect: Dialect) -> Processor:
    return type_.dialect_impl(dialect).bind_processor(dialect)  # type: ignore[no-any-return]
