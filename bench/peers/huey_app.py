"""Huey peer: SqliteHuey (results off), run by ``huey_consumer huey_app.huey -w 4 -k thread``."""

from __future__ import annotations

import os

from bench_marks import mark
from huey import SqliteHuey

huey = SqliteHuey("bench", filename=os.environ["BENCH_HUEY_DB"], results=False)


@huey.task()
def noop(i: str) -> None:
    mark(i)


@huey.task()
def nap(i: str) -> None:
    mark(i, 0.05)
