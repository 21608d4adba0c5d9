"""Job output on its way to the store: cleaned, redacted, truncated, batched, in order."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from support import wait_until, write_template

from opsconsole.core.secrets import Redactor
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import FINAL, JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.views import JobView, LogLine
from opsconsole.engine.logsink import LogSink, clean_line

S = JobState

# -- clean_line ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\x1b[1;31mred\x1b[0m plain", "red plain"),  # SGR colours
        ("\x1b[2J\x1b[H\x1b[?25lscreen", "screen"),  # clear, home, hide cursor
        ("\x1b]0;window title\x07after", "after"),  # OSC ended by BEL
        ("\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink
        ("done\x1b(B\x1b[m", "done"),  # what `tput sgr0` prints: charset + SGR reset
        ("\x1b7saved\x1b8", "saved"),  # DECSC / DECRC
        ("\x1bPq#0;2;0;0;0\x1b\\img", "img"),  # DCS string (sixel) with its payload
        ("\x9b2Jeight-bit", "eight-bit"),  # 8-bit CSI (C1 control)
        ("bell\x07 back\x08space nul\x00", "bell backspace nul"),  # C0 controls
        ("tab\tkept", "tab\tkept"),
        ("caf\u00e9 \u00e0 \u4e2d\u6587 \u00a0nbsp", "caf\u00e9 \u00e0 \u4e2d\u6587 \u00a0nbsp"),
        ("trailing escape \x1b", "trailing escape "),
    ],
)
def test_clean_line_strips_escape_sequences_and_controls(raw: str, clean: str) -> None:
    assert clean_line(raw) == clean


def test_clean_line_leaves_plain_text_alone() -> None:
    text = "plain [brackets] ; 100% done ~ {json: 1}"
    assert clean_line(text) is text


# -- LogSink against a real store ------------------------------------------------------------


@pytest.fixture
def running_job(service: OpsService, catalog: Path) -> tuple[str, int]:
    """A job claimed by a (fake-named) worker, so its attempt may write log lines."""
    write_template(catalog, "noop", "command: ['true']\n")
    job = service.submit(SubmitRequest("noop"))
    row = claim_store.claim(service.db, "tester:1:0000", service.now(), lease_s=60)
    assert row is not None and row["id"] == job.id
    return job.id, row["attempts"]


@pytest.fixture
def log_inserts(service: OpsService) -> Iterator[list[int]]:
    """Rows per INSERT statement into job_logs (an executemany counts as one statement)."""
    sizes: list[int] = []

    def count(_conn: Any, _cur: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO JOB_LOGS"):
            sizes.append(len(params) if many else 1)

    event.listen(service.db.engine, "before_cursor_execute", count)
    yield sizes
    event.remove(service.db.engine, "before_cursor_execute", count)


def make_sink(service: OpsService, job: tuple[str, int], **kw: Any) -> LogSink:
    return LogSink(
        service.db,
        job[0],
        job[1],
        service.clock,
        kw.pop("redactor", Redactor()),
        cap=kw.pop("cap", 1_000_000),
        line_max=kw.pop("line_max", 200),
        **kw,
    )


def all_lines(service: OpsService, job_id: str) -> list[LogLine]:
    out: list[LogLine] = []
    while batch := service.logs_since(job_id, out[-1].seq if out else 0, limit=5000):
        out.extend(batch)
    return out


def test_sink_writes_many_lines_in_order_and_in_batches(
    service: OpsService, running_job: tuple[str, int], log_inserts: list[int]
) -> None:
    sink = make_sink(service, running_job, batch=500)
    writers = 4
    per_writer = 5000
    lock = threading.Lock()
    order: list[str] = []

    def produce(w: int) -> None:
        for i in range(per_writer):
            with lock:  # the order lines reach the sink is the order they must come back in
                text = f"w{w} line {i}"
                order.append(text)
                sink.write("out", text)

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    sink.close()

    lines = [ln for ln in all_lines(service, running_job[0]) if ln.stream == "out"]
    assert [ln.text for ln in lines] == order
    assert len(lines) == writers * per_writer == 20_000
    seqs = [ln.seq for ln in lines]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert service.get(running_job[0]).log_lines == 20_001  # plus the "attempt started" line
    assert sum(log_inserts) == 20_000
    assert max(log_inserts) <= 500
    assert len(log_inserts) <= 20_000 // 500 * 2, f"{len(log_inserts)} inserts: not batched"


def test_sink_cleans_then_redacts_and_truncates_long_lines(
    service: OpsService, running_job: tuple[str, int]
) -> None:
    sink = make_sink(service, running_job, redactor=Redactor(["hunter22"]), line_max=100)
    sink.write("out", "password=hun\x1b[0mter22 ok")  # an escape inside a secret hides nothing
    sink.write("err", "x" * 250)
    sink.progress(30, "step with hunter22 \x1b[1minside")
    sink.close()

    lines = [ln for ln in all_lines(service, running_job[0]) if ln.stream != "meta"]
    assert [ln.stream for ln in lines] == ["out", "err"]
    assert lines[0].text == "password=*** ok"
    assert lines[1].text.startswith("x" * 100)
    assert lines[1].text.endswith("[150 chars truncated]")
    view = service.get(running_job[0])
    assert (view.progress, view.step) == (30, "step with *** inside")


def test_sink_refuses_to_write_for_a_replaced_attempt(
    service: OpsService, running_job: tuple[str, int]
) -> None:
    job_id, attempt = running_job
    sink = make_sink(service, (job_id, attempt + 1))  # an attempt the store does not know
    sink.write("out", "from a ghost")
    assert sink.close() is True  # nothing left to write: the store will take none of it
    assert sink.fenced and sink.problem is None
    assert [ln.text for ln in all_lines(service, job_id) if ln.stream == "out"] == []


def test_a_line_larger_than_the_buffer_is_taken_when_the_buffer_is_empty(
    service: OpsService, running_job: tuple[str, int]
) -> None:
    """The bound never refuses a line outright: that would block its writer forever."""
    sink = make_sink(service, running_job, buffer_bytes=10, buffer_lines=1)
    sink.write("out", "x" * 100)
    sink.write("out", "y" * 100)
    assert sink.close()
    assert [ln.text for ln in all_lines(service, running_job[0]) if ln.stream == "out"] == [
        "x" * 100,
        "y" * 100,
    ]


def test_progress_lands_on_the_row_and_not_in_the_event_feed(
    service: OpsService, running_job: tuple[str, int]
) -> None:
    job_id = running_job[0]
    before = service.events_since(0, job=job_id)
    sink = make_sink(service, running_job, progress_interval=60)
    for pct in range(101):
        sink.progress(pct, f"step {pct // 10}")
    assert sink.close()
    view = service.get(job_id)
    assert (view.progress, view.step) == (100, "step 10")
    assert service.events_since(0, job=job_id) == before


# -- job output through the shell runner -----------------------------------------------------


def run_shell(service: OpsService, catalog: Path, start_pool: Any, script: str) -> JobView:
    name = "out-" + re.sub(r"[^a-z0-9]", "", script.lower())[:20]
    body = "command:\n  - bash\n  - -c\n  - |\n" + "".join(
        f"    {line}\n" for line in script.splitlines()
    )
    write_template(catalog, name, body)
    service.reload_catalog()
    job = service.submit(SubmitRequest(name))
    start_pool(1)
    return wait_until(lambda: (v := service.get(job.id)).state in FINAL and v, 20)


def test_ten_megabyte_line_is_truncated_with_an_honest_marker(
    service: OpsService, catalog: Path, start_pool: Any
) -> None:
    view = run_shell(
        service,
        catalog,
        start_pool,
        "head -c 10000000 /dev/zero | tr '\\0' a; echo; echo after",
    )
    assert view.state == S.SUCCEEDED
    out = [ln.text for ln in all_lines(service, view.id) if ln.stream == "out"]
    assert out[-1] == "after"
    assert len(out) == 2
    kept_max = service.settings.log_line_max
    long = out[0]
    assert long.startswith("a" * 1000)
    assert len(long) <= kept_max + 64
    m = re.search(r"\[(\d+) (bytes|chars) truncated\]$", long)
    assert m is not None, long[-80:]
    kept = len(long) - len(m.group(0)) - len(" \u2026 ")
    assert kept + int(m.group(1)) == 10_000_000, "the marker must count what was really dropped"


def test_invalid_utf8_and_escapes_from_a_job(
    service: OpsService, catalog: Path, start_pool: Any
) -> None:
    view = run_shell(
        service,
        catalog,
        start_pool,
        "printf 'bad \\377\\376 bytes\\n'\n"
        "printf '\\033[32mgreen\\033(B\\033[m\\n'\n"
        "printf 'half \\342\\202 char\\n' >&2",
    )
    assert view.state == S.SUCCEEDED
    got = {(ln.stream, ln.text) for ln in all_lines(service, view.id) if ln.stream != "meta"}
    assert got == {
        ("out", "bad \ufffd\ufffd bytes"),
        ("out", "green"),
        ("err", "half \ufffd char"),
    }


def test_twenty_thousand_lines_from_a_job_arrive_in_order(
    service: OpsService, catalog: Path, start_pool: Any, log_inserts: list[int]
) -> None:
    view = run_shell(service, catalog, start_pool, "seq 1 20000")
    assert view.state == S.SUCCEEDED
    out = [ln.text for ln in all_lines(service, view.id) if ln.stream == "out"]
    assert out == [str(i) for i in range(1, 20_001)]
    assert view.log_lines == 20_001
    assert sum(log_inserts) == 20_001  # the claim writes the "started" line itself
    assert len(log_inserts) < 200, f"{len(log_inserts)} inserts for 20,000 lines"


def test_store_file_never_holds_a_secret(
    service: OpsService, catalog: Path, start_pool: Any, db_path: Path
) -> None:
    """Secrets are encrypted at rest and masked in logs, results and errors."""
    secret = "s3cr3t-T0KEN-value"
    write_template(
        catalog,
        "leaky",
        "env: {TOKEN: '{{ token }}'}\n"
        "params: {token: {type: string, secret: true, required: true}}\n"
        "command:\n  - bash\n  - -c\n  - |\n"
        '    echo "token is $TOKEN"\n'
        '    echo "$TOKEN" >&2\n'
        '    echo "::result {\\"t\\": \\"$TOKEN\\"}"\n'
        '    echo "::step using $TOKEN"\n'
        "    exit 7\n",
    )
    job = service.submit(SubmitRequest("leaky", {"token": secret}))
    start_pool(1)
    view = wait_until(lambda: (v := service.get(job.id)).state in FINAL and v, 10)
    assert view.state == S.FAILED
    lines = [(ln.stream, ln.text) for ln in all_lines(service, job.id) if ln.stream != "meta"]
    assert ("out", "token is ***") in lines
    assert ("err", "***") in lines
    assert view.result == {"t": "***"}
    assert view.step == "using ***"
    assert view.params == {"token": "***"}
    service.db.dispose()  # let SQLite fold the WAL back; then read every byte the store has
    blob = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert secret.encode() not in blob


def test_a_secret_across_the_cut_is_masked_before_the_line_is_cut(
    service: OpsService, running_job: tuple[str, int]
) -> None:
    """Redaction runs before truncation: no prefix of a secret survives at the cut."""
    sink = make_sink(service, running_job, line_max=20, redactor=Redactor(["s3cr3t-value"]))
    sink.write("out", "x" * 15 + "s3cr3t-value" + "y" * 10)
    sink.close()
    [line] = [ln for ln in all_lines(service, running_job[0]) if ln.stream == "out"]
    assert "s3c" not in line.text
    assert line.text.startswith("x" * 15 + "***")
