"""Celery peer: a Redis broker, no result backend, run by ``celery -A celery_app worker
--pool threads --concurrency 4`` (threads, like opsconsole's slots and Huey's workers)."""

from __future__ import annotations

import os

from bench_marks import mark
from celery import Celery

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop(i: str) -> None:
    mark(i)


@app.task(name="nap")
def nap(i: str) -> None:
    mark(i, 0.05)
