"""Real-subprocess tests for the job process supervisor (Linux /proc required)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from opsconsole.engine.procs import (
    MARKER_ENV,
    ProcOutcome,
    ProcSpec,
    Supervisor,
    find_marked,
    kill_marked,
    pid_alive,
    proc_start_time,
)

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")

GRACE = 0.5


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.02)


class Lines:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[tuple[str, str]] = []

    def __call__(self, stream: str, text: str) -> None:
        with self._lock:
            self.items.append((stream, text))

    def of(self, stream: str) -> list[str]:
        with self._lock:
            return [t for s, t in self.items if s == stream]


@pytest.fixture
def marker() -> Iterator[str]:
    m = f"test-{uuid.uuid4().hex[:12]}.1"
    yield m
    kill_marked(m, grace=0.1)  # never leak processes into other tests


def spec(marker: str, argv: list[str], **kw: object) -> ProcSpec:
    return ProcSpec(argv=argv, env=dict(os.environ), cwd=os.getcwd(), marker=marker, **kw)


def run(
    marker: str, argv: list[str], *, lines: Lines | None = None, **wait_kw: object
) -> tuple[ProcOutcome, Lines]:
    lines = lines or Lines()
    sup = Supervisor(spec(marker, argv), lines)
    pid = sup.start()
    assert sup.pid == pid
    outcome = sup.wait(grace=GRACE, **wait_kw)
    return outcome, lines


def bash(script: str) -> list[str]:
    return ["bash", "-c", script]


def test_lines_in_order_per_stream(marker):
    script = "for i in 1 2 3; do echo out$i; echo err$i >&2; done; printf 'crlf\\r\\nlast'"
    outcome, lines = run(marker, bash(script))
    assert outcome == ProcOutcome(exit_code=0, signal=None, reason="exited", pid=outcome.pid)
    assert lines.of("stdout") == ["out1", "out2", "out3", "crlf", "last"]
    assert lines.of("stderr") == ["err1", "err2", "err3"]


def test_marker_is_in_child_env(marker):
    _, lines = run(marker, bash(f'echo "${MARKER_ENV}"'))
    assert lines.of("stdout") == [marker]


def test_exit_codes_and_signals(marker):
    outcome, _ = run(marker, bash("exit 3"))
    assert (outcome.exit_code, outcome.signal, outcome.reason) == (3, None, "exited")
    outcome, _ = run(marker, bash("kill -KILL $$"))
    assert (outcome.exit_code, outcome.signal, outcome.reason) == (None, signal.SIGKILL, "exited")


def test_missing_program_raises(marker):
    sup = Supervisor(spec(marker, ["/nonexistent/definitely-not-here"]), Lines())
    with pytest.raises(FileNotFoundError):
        sup.start()


def test_stdin_data_reaches_child(marker):
    lines = Lines()
    sup = Supervisor(spec(marker, ["cat"], stdin_data=b"hello\nworld"), lines)
    sup.start()
    assert sup.wait(grace=GRACE).exit_code == 0
    assert lines.of("stdout") == ["hello", "world"]


def test_no_stdin_data_means_devnull(marker):
    outcome, lines = run(marker, ["cat"], deadline=time.monotonic() + 5)
    assert outcome.reason == "exited"
    assert lines.of("stdout") == []


def test_invalid_utf8_becomes_replacement(marker):
    _, lines = run(marker, ["printf", "\\377\\376ok\\n"])
    assert lines.of("stdout") == ["\ufffd\ufffdok"]


def test_huge_line_is_truncated(marker):
    limit = 65536
    code = "import sys; sys.stdout.buffer.write(b'x' * 10_000_000 + b'\\nend\\n')"
    outcome, lines = run(marker, [sys.executable, "-c", code])
    assert outcome.exit_code == 0
    first, second = lines.of("stdout")
    assert len(first) <= limit + 64
    assert first.startswith("x" * limit)
    assert first.endswith(f" \u2026 [{10_000_000 - limit} bytes truncated]")
    assert second == "end"


def test_truncation_does_not_split_a_character(marker):
    sup = Supervisor(spec(marker, ["printf", "ab\\303\\251cd"], max_line_bytes=3), lines := Lines())
    sup.start()
    sup.wait(grace=GRACE)
    assert lines.of("stdout") == ["ab \u2026 [4 bytes truncated]"]


def test_callback_error_is_raised_after_exit(marker):
    seen: list[str] = []

    def on_line(stream: str, text: str) -> None:
        seen.append(text)
        if text == "boom":
            raise ValueError("sink broke")

    sup = Supervisor(spec(marker, bash("echo a; echo boom; echo c; exit 4")), on_line)
    sup.start()
    with pytest.raises(ValueError, match="sink broke"):
        sup.wait(grace=GRACE)
    assert seen == ["a", "boom", "c"]
    assert not find_marked(marker)


def test_timeout_kills_term_ignoring_tree(marker):
    script = "trap '' TERM; sleep 60 & echo $$ $!; setsid sleep 60 & echo $!; sleep 60; wait"
    lines = Lines()
    sup = Supervisor(spec(marker, bash(script)), lines)
    sup.start()
    wait_until(lambda: len(lines.of("stdout")) == 2)
    start = time.monotonic()
    deadline = start + 0.5
    outcome = sup.wait(deadline=deadline, grace=GRACE)
    assert outcome.reason == "timed_out"
    assert outcome.signal == signal.SIGKILL  # TERM was ignored
    assert time.monotonic() < deadline + GRACE + 2
    pids = [int(p) for line in lines.of("stdout") for p in line.split()]
    assert pids[0] == outcome.pid
    assert find_marked(marker) == []
    assert not any(pid_alive(p) for p in pids)


def test_setsid_escapee_of_normal_exit_is_killed(marker):
    outcome, lines = run(marker, bash("setsid sleep 60 & echo $!"))
    assert outcome.reason == "exited" and outcome.exit_code == 0
    (escapee,) = [int(x) for x in lines.of("stdout")]
    assert not pid_alive(escapee)
    assert find_marked(marker) == []


def test_background_child_of_normal_exit_is_killed(marker):
    start = time.monotonic()
    outcome, lines = run(marker, bash("sleep 60 & echo $!"))
    assert outcome.reason == "exited" and outcome.exit_code == 0
    assert time.monotonic() - start < 5
    (bg,) = [int(x) for x in lines.of("stdout")]
    assert not pid_alive(bg)
    assert find_marked(marker) == []


def test_cancel(marker):
    lines = Lines()
    sup = Supervisor(spec(marker, bash("echo ready; exec sleep 60")), lines)
    sup.start()
    start = time.monotonic()
    outcome = sup.wait(cancelled=lambda: bool(lines.of("stdout")), grace=GRACE)
    assert outcome.reason == "cancelled"
    assert outcome.signal == signal.SIGTERM
    assert time.monotonic() - start < 5
    assert find_marked(marker) == []


def test_stop_from_another_thread_cancels_wait(marker):
    lines = Lines()
    sup = Supervisor(spec(marker, bash("echo ready; sleep 60 & sleep 60")), lines)
    sup.start()
    wait_until(lambda: lines.of("stdout"))
    stopper = threading.Thread(target=sup.stop, args=(GRACE,))
    stopper.start()
    outcome = sup.wait(grace=GRACE)
    stopper.join(5)
    assert outcome.reason == "cancelled"
    assert find_marked(marker) == []
    sup.stop(GRACE)  # idempotent


def test_stop_before_wait(marker):
    sup = Supervisor(spec(marker, bash("sleep 60 & sleep 60")), Lines())
    sup.start()
    sup.stop(GRACE)
    assert find_marked(marker) == []
    assert sup.wait(grace=GRACE).reason == "cancelled"


def test_kill_marked_orphaned_tree(marker):
    env = {**os.environ, MARKER_ENV: marker}
    parent = subprocess.Popen(
        bash("setsid bash -c 'sleep 60 & sleep 60; wait' &"),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert parent.wait(5) == 0
    wait_until(lambda: len(find_marked(marker)) == 3)
    orphans = find_marked(marker)
    assert all(proc_start_time(p) is not None for p in orphans)
    assert kill_marked(marker, grace=GRACE) == 3
    assert find_marked(marker) == []
    assert not any(pid_alive(p) for p in orphans)
    assert kill_marked(marker, grace=GRACE) == 0


def test_pid_helpers():
    assert pid_alive(os.getpid())
    assert proc_start_time(os.getpid()) == proc_start_time(os.getpid()) is not None
    assert os.getpid() not in find_marked("anything")
    child = subprocess.Popen(["true"])
    wait_until(lambda: not pid_alive(child.pid))  # a zombie counts as dead before reaping
    child.wait()
    assert proc_start_time(child.pid) is None
    assert not pid_alive(child.pid)


def test_unread_stdin_does_not_block(marker):
    sup = Supervisor(spec(marker, bash("exit 0"), stdin_data=b"x" * 5_000_000), Lines())
    sup.start()
    start = time.monotonic()
    assert sup.wait(grace=GRACE).exit_code == 0
    assert time.monotonic() - start < 5


def test_unmarked_escapee_holding_pipe_does_not_hang(marker):
    # env -i drops the marker, so only the bounded reader join saves us here.
    lines = Lines()
    sup = Supervisor(spec(marker, bash("env -i setsid /bin/sleep 30 & echo $!")), lines)
    sup.start()
    start = time.monotonic()
    try:
        outcome = sup.wait(grace=GRACE)
        assert outcome.reason == "exited"
        assert time.monotonic() - start < 5
        assert len(lines.of("stdout")) == 1
    finally:
        for text in lines.of("stdout"):
            os.kill(int(text), signal.SIGKILL)
