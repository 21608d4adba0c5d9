"""The local wake-up channel: pokes reach listeners; closing under a waiter is quiet."""

from __future__ import annotations

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
