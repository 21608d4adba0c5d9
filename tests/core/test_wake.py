"""The local wake-up channel: pokes reach listeners; closing under a waiter is quiet."""

from __future__ import annotations

import os
import threading

from opsconsole.core import wake


def test_a_poke_reaches_a_listener_and_is_drained() -> None:
    listener = wake.Listener("sqlite:///wake-poke-test.db")
    try:
        assert wake.notify("sqlite:///wake-poke-test.db") >= 1
        assert listener.wait(2.0) is True
        assert listener.wait(0.05) is False  # all queued pokes were drained
    finally:
        listener.close()


def test_listeners_of_other_stores_are_not_poked() -> None:
    listener = wake.Listener("sqlite:///wake-a.db")
    try:
        wake.notify("sqlite:///wake-b.db")
        assert listener.wait(0.1) is False
    finally:
        listener.close()


def test_closing_the_wake_listener_under_a_waiting_thread_is_quiet(monkeypatch):
    listener = wake.Listener("sqlite:///wake-race-test.db")
    assert listener.sock is not None
    sock = listener.sock
    closed = threading.Event()

    def poked_then_closed(rlist, wlist, xlist, timeout):
        # a poke arrives; before the waiter reads it, the pool closes the listener
        closed.wait(5)
        return [sock], [], []

    monkeypatch.setattr(wake.select, "select", poked_then_closed)
    errors = []
    waiter = threading.Thread(target=lambda: _wait(listener, errors), name="wake-test")
    waiter.start()
    listener.close()
    closed.set()
    waiter.join(5)
    assert not waiter.is_alive()
    assert errors == []


def _wait(listener, errors):
    try:
        listener.wait(1)
    except Exception as exc:
        errors.append(repr(exc))


def test_every_spelling_of_one_sqlite_store_is_one_key(tmp_path):
    store = tmp_path / "home" / "ops.db"
    store.parent.mkdir()
    store.touch()
    (tmp_path / "link").symlink_to(store.parent, target_is_directory=True)
    relative = os.path.relpath(tmp_path / "link" / "ops.db")  # from the test's cwd
    spellings = [
        f"sqlite:///{store}",
        f"sqlite:///{tmp_path}/home/../home/./ops.db",
        f"sqlite:///{relative}",
        f"sqlite:///{tmp_path}/link/ops.db?mode=rw",
        f"sqlite+pysqlite:///{store}",
    ]
    assert {wake.store_key(url) for url in spellings} == {f"sqlite:{store}"}
    assert len({wake.names(url) for url in spellings}) == 1
    assert wake.store_key(f"sqlite:///{tmp_path}/other.db") != wake.store_key(spellings[0])
    assert wake.store_key("postgresql+psycopg://u@/db") == "postgresql+psycopg://u@/db"


def test_a_poke_reaches_a_listener_that_took_a_gap_or_the_next_name(tmp_path):
    url = f"sqlite:///{tmp_path}/gaps.db"
    listeners = [wake.Listener(url) for _ in range(3)]
    try:
        assert wake.notify(url) == 3
        listeners[1].close()  # a worker stops: its name is a gap below a live one
        assert wake.notify(url) == 2
        listeners[1] = wake.Listener(url)  # a new worker takes the gap
        listeners.append(wake.Listener(url))  # and another the name above the highest
        assert wake.notify(url) == 4
        for listener in listeners:
            assert listener.wait(2.0) is True
    finally:
        for listener in listeners:
            listener.close()


def test_a_worker_pool_hears_a_submit_made_with_another_spelling_of_its_store(
    settings, db_path, catalog, tmp_path, handler
):
    """The pool listens under its own URL; a program submits through a relative path in a
    symlinked directory with a query: the poke reaches the pool, which runs the job at once
    although its next poll is an hour away."""
    from support import wait_until, write_template

    from opsconsole.config import load_settings
    from opsconsole.core.service import OpsService, SubmitRequest
    from opsconsole.core.states import JobState
    from opsconsole.core.store.db import Database
    from opsconsole.engine.pool import WorkerPool

    noop = handler("def run(ctx):\n    return None\n")
    write_template(catalog, "noop", f"runner: python\nhandler: {noop}\nisolate: false\n")
    (tmp_path / "link").symlink_to(db_path.parent, target_is_directory=True)
    other = f"sqlite:///{os.path.relpath(tmp_path / 'link' / db_path.name)}?mode=rw&uri=true"
    assert other != settings.db

    worker_settings = load_settings(
        home=settings.home, catalog=catalog, db=f"sqlite:///{db_path}", poll_interval=3600
    )
    worker_db = Database(worker_settings.db)
    pool = WorkerPool(OpsService(worker_settings, worker_db), slots=1, use_scheduler=False)
    pool.start()
    program_db = Database(other)
    try:
        program = OpsService(
            load_settings(home=settings.home, catalog=catalog, db=other), program_db
        )
        assert wake.notify(other) == 1  # the pool's listener, and no other
        job = program.submit(SubmitRequest("noop"))
        done = wait_until(lambda: program.get(job.id).state == JobState.SUCCEEDED, timeout=30)
        assert done
    finally:
        pool.stop(grace=0.5)
        program_db.dispose()
        worker_db.dispose()
