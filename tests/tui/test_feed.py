"""The feed's counts for the header: history is counted once, then followed by its events."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import failed_job, wait_until

from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.tui import feed as feed_module
from opsconsole.tui.feed import Feed
from opsconsole.tui.messages import CountsChanged

S = JobState


@pytest.fixture
def full_counts(clocked: OpsService, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the service counted every job (a scan of all history)."""
    calls: list[int] = []
    real = clocked.counts

    def counted() -> dict[str, int]:
        calls.append(1)
        return real()

    monkeypatch.setattr(clocked, "counts", counted)
    return calls


@pytest.fixture
def running_feed(
    clocked: OpsService, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Feed, list[Any]]]:
    monkeypatch.setattr(feed_module, "COUNTS_EVERY", 0.05)
    monkeypatch.setattr(feed_module, "INTERVAL", 0.05)
    posted: list[Any] = []
    feed = Feed(clocked, posted.append)
    feed.start_at(clocked.last_event_id())
    yield feed, posted
    feed.stop()


def latest_counts(posted: list[Any]) -> dict[str, int]:
    counts = [m.counts for m in list(posted) if isinstance(m, CountsChanged)]
    return counts[-1] if counts else {}


def test_finished_jobs_are_counted_from_their_events_not_by_counting_history_again(
    clocked: OpsService,
    clock: SettableClock,
    templates: Path,
    put: Any,
    end: Callable[..., None],
    full_counts: list[int],
    running_feed: tuple[Feed, list[Any]],
) -> None:
    put("done1", S.SUCCEEDED, ended=60)
    put("run1", S.RUNNING, age=5)
    feed, posted = running_feed
    first = feed.counts()  # what the console's first load asks for
    assert (first["succeeded"], first["running"], first["failed"]) == (1, 1, 0)
    assert len(full_counts) == 1
    thread = threading.Thread(target=feed.run, daemon=True)
    thread.start()
    try:
        end("run1", S.FAILED, exit_code=1)
        wait_until(
            lambda: (
                latest_counts(posted).get("failed") == 1
                and latest_counts(posted).get("running") == 0
            ),
            timeout=15,
        )
        assert latest_counts(posted)["succeeded"] == 1
        assert len(full_counts) == 1  # the failure came from its event, live ones per tick
        # a retry takes a job out of a final state (the event does not say which): recount
        job = failed_job(clocked, clock, SubmitRequest("echo", {"word": "hi"}))
        wait_until(lambda: latest_counts(posted).get("failed") == 2, timeout=15)
        clocked.retry(job)
        wait_until(
            lambda: (
                latest_counts(posted).get("failed") == 1
                and latest_counts(posted).get("queued") == 1
            ),
            timeout=15,
        )
        assert len(full_counts) == 2
    finally:
        feed.stop()
        thread.join(10)
    assert not thread.is_alive()
