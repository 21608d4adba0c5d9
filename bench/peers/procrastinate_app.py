"""Procrastinate peer: the same PostgreSQL cluster as opsconsole's (its own database), run by
``procrastinate --app=procrastinate_app.app worker --concurrency 4`` (LISTEN/NOTIFY on)."""

from __future__ import annotations

import os

from bench_marks import mark
from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ["BENCH_PG_DSN"]))


@app.task(name="noop")
def noop(i: str) -> None:
    mark(i)


@app.task(name="nap")
def nap(i: str) -> None:
    mark(i, 0.05)
