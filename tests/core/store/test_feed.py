"""Log batches (numbering, cap with marker, fencing) and the event feed read from a cursor."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

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


def test_progress_updates_the_row_and_writes_no_event(db, put_job, clock):
    """Progress ticks are not facts for the audit trail or the change feed."""
    attempt = running(db, put_job, clock)
    before = feed.last_event_id(db)
    for pct in range(0, 101, 10):
        assert job_store.update_progress(db, "aaa234", attempt, clock.now(), progress=pct, step="s")
    assert feed.events_since(db, before) == []
    assert [e["kind"] for e in feed.job_events(db, "aaa234")] == ["submitted", "started"]
    with db.read() as conn:
        row = job_store.fetch(conn, "aaa234")
    assert (row["progress"], row["step"]) == (100, "s")
    # a fenced-off attempt moves nothing
    assert not job_store.update_progress(
        db, "aaa234", attempt + 1, clock.now(), progress=1, step="x"
    )


# -- the cap, against a model ----------------------------------------------------------------


@pytest.fixture
def inserted(db):
    """Every row SQLite inserts into job_logs, seen by a trigger; ``take()`` reads and clears."""
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE test_inserted (job_id TEXT, seq INTEGER)")
        if db.dialect == "postgresql":
            conn.exec_driver_sql(
                "CREATE FUNCTION test_log_inserted() RETURNS trigger AS $$ BEGIN "
                "INSERT INTO test_inserted VALUES (NEW.job_id, NEW.seq); RETURN NULL; END; "
                "$$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER test_log_inserted AFTER INSERT ON job_logs "
                "FOR EACH ROW EXECUTE FUNCTION test_log_inserted()"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER test_log_inserted AFTER INSERT ON job_logs "
                "BEGIN INSERT INTO test_inserted VALUES (NEW.job_id, NEW.seq); END"
            )

    def take():
        with db.write() as conn:
            rows = conn.exec_driver_sql("SELECT job_id, seq FROM test_inserted").all()
            conn.exec_driver_sql("DELETE FROM test_inserted")
        return [tuple(r) for r in rows]

    return take


def model(all_lines, cap):
    """What a log of ``all_lines`` keeps under ``cap``: the rule, said plainly.

    The first half of the cap, then a marker in place of the next line saying how many lines
    it stands for, then the newest lines that fill the rest (at least one line each side).
    """
    total = len(all_lines)
    head = max(cap // 2, 1)
    tail = max(cap - head - 1, 1)
    if total <= cap or total - tail <= head + 1:
        return all_lines, 0
    dropped = total - tail - head
    seq, ts, attempt, _, _ = all_lines[head]
    marker = (seq, ts, attempt, "meta", feed.truncation_marker(dropped, cap))
    return [*all_lines[:head], marker, *all_lines[total - tail :]], dropped


def full_rows(db, job_id):
    return [
        (r["seq"], r["ts"], r["attempt"], r["stream"], r["line"])
        for r in feed.logs_since(db, job_id, 0, 100_000)
    ]


def test_the_cap_keeps_what_the_model_keeps_and_never_inserts_a_line_it_drops(
    db, put_job, clock, inserted
):
    """Many caps and batch sizes (batches larger than the cap too), checked after each batch."""
    rng = random.Random(7)
    for case in range(120):
        job_id = f"cap{case:04d}"
        cap = rng.choice([1, 2, 3, 4, 5, 6, 7, 10, 11, 25])
        attempt = running(db, put_job, clock, job_id)
        every = full_rows(db, job_id)  # the "attempt started" line
        inserted()
        for _ in range(rng.randint(1, 8)):
            n = rng.choice(
                [1, rng.randint(1, 3), max(cap - 1, 1), cap, cap + 1, rng.randint(cap, 4 * cap + 9)]
            )
            batch = [
                (
                    clock.now() + timedelta(milliseconds=len(every) + i),
                    rng.choice(["out", "err"]),
                    f"{job_id} line {len(every) + i}",
                )
                for i in range(n)
            ]
            assert feed.append_logs(db, job_id, attempt, batch, cap=cap)
            every += [
                (len(every) + 1 + i, ts, attempt, stream, text)
                for i, (ts, stream, text) in enumerate(batch)
            ]
            kept, lost = model(every, cap)
            where = f"case {case}: cap {cap}, {len(every)} lines so far"
            assert full_rows(db, job_id) == kept, where
            with db.read() as conn:
                row = job_store.fetch(conn, job_id)
            assert (row["log_lines"], row["log_dropped"]) == (len(every), lost), where
            stored = {seq for seq, *_ in kept}
            new = inserted()
            assert all(seq in stored for _, seq in new), f"{where}: inserted, then deleted"
            assert len(new) <= n


def test_a_batch_past_the_cap_inserts_only_the_lines_it_keeps(db, put_job, clock, inserted):
    attempt = running(db, put_job, clock)
    inserted()
    assert feed.append_logs(db, "aaa234", attempt, lines(clock, ["x"] * 100_000), cap=10)
    assert len(inserted()) == 9  # lines 2-5 (1 is the attempt's), the marker, the last 4
    assert feed.append_logs(db, "aaa234", attempt, lines(clock, ["y"] * 5000), cap=10)
    assert [seq for _, seq in inserted()] == [104_998, 104_999, 105_000, 105_001]
    assert len(stored(db, "aaa234")) == 10
