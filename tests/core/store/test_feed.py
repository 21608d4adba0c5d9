"""Log batches (numbering, cap with marker, fencing) and the event feed read from a cursor."""

from __future__ import annotations

from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import feed
from opsconsole.core.store import jobs as job_store

S = JobState


def running(db, put_job, clock, job_id="aaa234"):
    put_job(S.QUEUED, id=job_id)
    row = claim_store.claim(db, "w1", clock.now(), 30)
    assert row["id"] == job_id
    return row["attempts"]


def lines(clock, texts, stream="out"):
    return [(clock.now(), stream, t) for t in texts]


def stored(db, job_id):
    return [(r["seq"], r["stream"], r["line"]) for r in feed.logs_since(db, job_id, 0, 1000)]


def dropped(db, job_id):
    with db.read() as conn:
        return job_store.fetch(conn, job_id)["log_dropped"]


def test_lines_are_numbered_after_the_attempt_marker(db, put_job, clock):
    attempt = running(db, put_job, clock)
    assert feed.append_logs(db, "aaa234", attempt, lines(clock, ["one", "two"]), cap=100)
    assert feed.append_logs(db, "aaa234", attempt, lines(clock, ["three"], "err"), cap=100)
    assert stored(db, "aaa234") == [
        (1, "meta", "attempt 1 started on w1"),
        (2, "out", "one"),
        (3, "out", "two"),
        (4, "err", "three"),
    ]
    assert [r["line"] for r in feed.logs_since(db, "aaa234", 2, 10)] == ["two", "three"]
    assert [r["seq"] for r in feed.logs_before(db, "aaa234", None, 2)] == [3, 4]
    assert [r["seq"] for r in feed.logs_before(db, "aaa234", 3, 10)] == [1, 2]


def test_cap_keeps_the_head_a_marker_and_the_tail(db, put_job, clock):
    attempt = running(db, put_job, clock)
    texts = [f"line {i}" for i in range(1, 26)]  # seq 2..26 after the attempt marker
    assert feed.append_logs(db, "aaa234", attempt, lines(clock, texts), cap=10)
    got = stored(db, "aaa234")
    assert len(got) == 10
    marker = feed.truncation_marker(17, 10)
    assert got == [
        (1, "meta", "attempt 1 started on w1"),
        (2, "out", "line 1"),
        (3, "out", "line 2"),
        (4, "out", "line 3"),
        (5, "out", "line 4"),
        (6, "meta", marker),
        (23, "out", "line 22"),
        (24, "out", "line 23"),
        (25, "out", "line 24"),
        (26, "out", "line 25"),
    ]
    assert "17 lines dropped" in marker
    assert dropped(db, "aaa234") == 17

    # the next batch continues the numbering and moves the cut forward
    assert feed.append_logs(db, "aaa234", attempt, lines(clock, ["more 1", "more 2"]), cap=10)
    got = stored(db, "aaa234")
    assert len(got) == 10
    assert got[5] == (6, "meta", feed.truncation_marker(19, 10))
    assert [s for s, _, _ in got[6:]] == [25, 26, 27, 28]
    assert got[-1] == (28, "out", "more 2")
    assert dropped(db, "aaa234") == 19


def test_under_the_cap_nothing_is_dropped(db, put_job, clock):
    attempt = running(db, put_job, clock)
    assert feed.append_logs(db, "aaa234", attempt, lines(clock, ["x"] * 9), cap=10)
    assert len(stored(db, "aaa234")) == 10
    assert dropped(db, "aaa234") == 0


def test_a_fenced_attempt_writes_nothing(db, put_job, clock):
    attempt = running(db, put_job, clock)
    assert feed.append_logs(db, "aaa234", attempt + 1, lines(clock, ["late"]), cap=100) is False
    job_store.finish(db, "aaa234", attempt, S.SUCCEEDED, clock.now(), values={})
    assert feed.append_logs(db, "aaa234", attempt, lines(clock, ["after"]), cap=100) is False
    assert stored(db, "aaa234") == [(1, "meta", "attempt 1 started on w1")]
    assert feed.append_logs(db, "aaa234", attempt, [], cap=100) is True


def test_events_since_reads_forward_in_id_order(db, put_job, clock):
    start = feed.last_event_id(db)
    put_job(S.QUEUED, id="aaa234")
    put_job(S.QUEUED, id="bbb234")
    claim_store.claim(db, "w1", clock.now(), 30)
    got = feed.events_since(db, start)
    assert [(e["job_id"], e["kind"]) for e in got] == [
        ("aaa234", "submitted"),
        ("bbb234", "submitted"),
        ("aaa234", "started"),
    ]
    ids = [e["id"] for e in got]
    assert ids == sorted(ids)
    assert feed.last_event_id(db) == ids[-1]
    assert [e["kind"] for e in feed.events_since(db, ids[0])] == ["submitted", "started"]
    assert [e["kind"] for e in feed.events_since(db, start, job_id="bbb234")] == ["submitted"]
    assert len(feed.events_since(db, start, limit=2)) == 2
    assert feed.events_since(db, ids[-1]) == []


def test_the_audit_trail_leaves_out_progress_ticks(db, put_job, clock):
    attempt = running(db, put_job, clock)
    assert job_store.update_progress(db, "aaa234", attempt, clock.now(), progress=50, step="half")
    assert [e["kind"] for e in feed.job_events(db, "aaa234")] == ["submitted", "started"]
    assert [e["kind"] for e in feed.events_since(db, 0)][-1] == "progress"
