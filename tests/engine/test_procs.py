"""Real-subprocess tests for the job process supervisor (Linux /proc required).

Every test runs twice: with a cgroup per job (skipped, with the reason, where the machine does
not allow it) and with the process-group and marker fallback (``supervision = pgroup``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import wait_until

from opsconsole.engine import supervise
from opsconsole.engine.procs import (
    MARKER_ENV,
    ChildHandle,
    ProcOutcome,
    ProcSpec,
    Supervisor,
    find_marked,
    kill_marked,
    pid_alive,
    popen_launcher,
    proc_start_time,
)

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")

GRACE = 0.5
FOREVER = "300"  # a child that waited this out would fail the test by pytest's timeout


@pytest.fixture(params=["cgroup", "pgroup"], autouse=True)
def supervision(request: pytest.FixtureRequest) -> str:
    """Run the test on each mechanism; the cgroup one only where the machine allows it."""
    mode: str = request.param
    if mode == "cgroup":
        found = supervise.detect()
        if found.mechanism != "cgroup":
            pytest.skip(f"no cgroup supervision on this machine: {found.reason}")
    supervise.configure(mode)  # the root conftest sets it back after the test
    assert supervise.mechanism() == mode
    return mode


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


def job_cgroup(marker: str) -> Path | None:
    root = supervise.jobs_root()
    return None if root is None else root / marker


@pytest.fixture
def marker() -> Iterator[str]:
    m = f"test-{uuid.uuid4().hex[:12]}.1"
    yield m
    kill_marked(m, grace=0.1)  # never leak processes or cgroups into other tests


def assert_nothing_left(marker: str) -> None:
    assert find_marked(marker) == []
    path = job_cgroup(marker)
    assert path is None or not path.exists(), f"{path} left behind"


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
    assert_nothing_left(marker)
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
    script = f"trap '' TERM; sleep {FOREVER} & echo $$ $!; setsid sleep {FOREVER} & echo $!"
    lines = Lines()
    sup = Supervisor(spec(marker, bash(f"{script}; sleep {FOREVER}; wait")), lines)
    sup.start()
    wait_until(lambda: len(lines.of("stdout")) == 2)
    outcome = sup.wait(deadline=time.monotonic() + 0.5, grace=GRACE)
    assert outcome.reason == "timed_out"
    assert outcome.signal == signal.SIGKILL  # TERM was ignored
    assert_nothing_left(marker)
    pids = [int(p) for line in lines.of("stdout") for p in line.split()]
    assert pids[0] == outcome.pid
    assert find_marked(marker) == []
    assert not any(pid_alive(p) for p in pids)


def test_setsid_escapee_of_normal_exit_is_killed(marker):
    outcome, lines = run(marker, bash(f"setsid sleep {FOREVER} & echo $!"))
    assert outcome.reason == "exited" and outcome.exit_code == 0
    (escapee,) = [int(x) for x in lines.of("stdout")]
    assert not pid_alive(escapee)
    assert find_marked(marker) == []


def test_background_child_of_normal_exit_is_killed(marker):
    outcome, lines = run(marker, bash(f"sleep {FOREVER} & echo $!"))
    assert outcome.reason == "exited" and outcome.exit_code == 0
    (bg,) = [int(x) for x in lines.of("stdout")]
    assert not pid_alive(bg)
    assert find_marked(marker) == []


def test_cancel(marker):
    lines = Lines()
    sup = Supervisor(spec(marker, bash(f"echo ready; exec sleep {FOREVER}")), lines)
    sup.start()
    outcome = sup.wait(cancelled=lambda: bool(lines.of("stdout")), grace=GRACE)
    assert outcome.reason == "cancelled"
    assert outcome.signal == signal.SIGTERM
    assert_nothing_left(marker)


def test_stop_from_another_thread_cancels_wait(marker):
    lines = Lines()
    sup = Supervisor(spec(marker, bash(f"echo ready; sleep {FOREVER} & sleep {FOREVER}")), lines)
    sup.start()
    wait_until(lambda: lines.of("stdout"))
    stopper = threading.Thread(target=sup.stop, args=(GRACE,))
    stopper.start()
    outcome = sup.wait(grace=GRACE)
    stopper.join(10)
    assert not stopper.is_alive()
    assert outcome.reason == "cancelled"
    assert_nothing_left(marker)
    sup.stop(GRACE)  # idempotent


def test_stop_before_wait(marker):
    sup = Supervisor(spec(marker, bash(f"sleep {FOREVER} & sleep {FOREVER}")), Lines())
    sup.start()
    sup.stop(GRACE)
    assert_nothing_left(marker)
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
    assert sup.wait(grace=GRACE).exit_code == 0


def test_unmarked_escapee_holding_pipe_does_not_hang(marker, supervision, tmp_path):
    # env -i drops the marker: the fallback cannot find it, only the bounded reader join
    # keeps wait() from hanging; a cgroup holds it like any other process of the job.
    pidfile = tmp_path / "escapee.pid"
    escapee = f"env -i setsid sh -c 'echo $$ > {pidfile}; exec sleep {FOREVER}' &"
    script = f"{escapee} while [ ! -s {pidfile} ]; do sleep 0.02; done"
    sup = Supervisor(spec(marker, bash(script)), Lines())
    sup.start()
    try:
        outcome = sup.wait(grace=GRACE)
        assert outcome.reason == "exited"
        assert pid_alive(int(pidfile.read_text())) == (supervision == "pgroup")
    finally:
        with contextlib.suppress(ValueError, FileNotFoundError, ProcessLookupError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


@pytest.mark.parametrize("supervision", ["cgroup"], indirect=True)
def test_env_cleared_daemon_does_not_survive_its_job(marker, supervision, tmp_path):
    """The issue's reproduction: ``setsid env -i sh -c 'sleep 300' &`` in a job."""
    pidfile = tmp_path / "daemon.pid"
    daemon = f"setsid env -i sh -c 'echo $$ > {pidfile}; exec sleep {FOREVER}' &"
    for end, script, kw in (
        ("exited", f"{daemon} while [ ! -s {pidfile} ]; do sleep 0.02; done", {}),
        ("cancelled", f"{daemon} sleep {FOREVER}", {"cancelled": pidfile.exists}),
        ("timed_out", f"{daemon} sleep {FOREVER}", {"deadline": None}),
    ):
        pidfile.unlink(missing_ok=True)
        sup = Supervisor(spec(marker, bash(script)), Lines())
        sup.start()
        if end == "timed_out":
            wait_until(pidfile.exists)
            kw = {"deadline": time.monotonic()}
        try:
            assert sup.wait(grace=GRACE, **kw).reason == end
            pid = int(wait_until(pidfile.read_text))
            assert not pid_alive(pid), f"the daemon outlived a job that {end}"
            assert_nothing_left(marker)
        finally:
            with contextlib.suppress(ValueError, FileNotFoundError, ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_child_is_in_its_cgroup_before_it_runs(marker, supervision):
    """The child's first command, and a grandchild it forks at once, are already inside."""
    lines = Lines()
    where = "sed -n 's/^0:://p' /proc/self/cgroup"
    script = f"{where}; ({where}; :) & wait"  # the second sed is a grandchild
    sup = Supervisor(spec(marker, ["sh", "-c", script]), lines)
    sup.start()
    cgroup = sup.cgroup
    assert (cgroup is not None) == (supervision == "cgroup")
    assert sup.wait(grace=GRACE).exit_code == 0
    seen = lines.of("stdout")
    assert len(seen) == 2
    if cgroup is not None:
        assert all(s.endswith(f"/{supervise.JOBS_DIR}/{marker}") for s in seen), seen
    else:
        assert not any(s.endswith(f"/{marker}") for s in seen)
    assert_nothing_left(marker)


@pytest.mark.parametrize("supervision", ["cgroup"], indirect=True)
def test_cgroups_a_job_creates_inside_its_own_go_with_it(marker, supervision, tmp_path):
    """A job may nest cgroups (a container, a worker of its own): all are killed and removed."""
    inner = job_cgroup(marker)
    assert inner is not None
    pidfile = tmp_path / "inner.pid"
    script = (
        f"mkdir {inner}/inner && "
        f"sh -c 'echo 0 > {inner}/inner/cgroup.procs; echo $$ > {pidfile}; exec sleep {FOREVER}' &"
        f" while [ ! -s {pidfile} ]; do sleep 0.02; done"
    )
    try:
        outcome, _ = run(marker, bash(script))
        assert outcome.exit_code == 0
        assert not pid_alive(int(pidfile.read_text()))
    finally:
        with contextlib.suppress(ValueError, FileNotFoundError, ProcessLookupError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


class SelfPlacingLauncher:
    """Like a zygote's children: the child joins the cgroup itself, as its first act."""

    def __init__(self) -> None:
        self.calls: list[str | None] = []

    def __call__(
        self,
        spec: ProcSpec,
        *,
        stdin: int | None,
        stdout: int,
        stderr: int,
        cgroup_procs: str | None,
    ) -> ChildHandle:
        self.calls.append(cgroup_procs)
        enter = f"open({cgroup_procs!r}, 'w').write('0')\n" if cgroup_procs is not None else ""
        code = f"import os, sys\n{enter}os.execvp(sys.argv[1], sys.argv[1:])\n"
        return subprocess.Popen(
            [sys.executable, "-c", code, *spec.argv],
            env={**spec.env, MARKER_ENV: spec.marker},
            cwd=spec.cwd,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )


def test_a_launcher_plugs_in(marker, supervision):
    launcher = SelfPlacingLauncher()
    lines = Lines()
    sup = Supervisor(spec(marker, bash(f"setsid sleep {FOREVER} & echo $!")), lines, launcher)
    sup.start()
    outcome = sup.wait(grace=GRACE)
    assert outcome.exit_code == 0
    (procs,) = launcher.calls
    assert (procs is not None) == (supervision == "cgroup")
    assert not pid_alive(int(lines.of("stdout")[0]))
    assert_nothing_left(marker)


def test_a_failing_launcher_leaves_no_cgroup(marker, supervision):
    def broken(spec: ProcSpec, **kw: object) -> ChildHandle:
        raise FileNotFoundError(2, "no such program")

    sup = Supervisor(spec(marker, ["anything"]), Lines(), broken)
    with pytest.raises(FileNotFoundError):
        sup.start()
    assert_nothing_left(marker)


def test_a_child_that_cannot_enter_its_cgroup_is_an_oserror(marker, supervision, tmp_path):
    missing = str(tmp_path / "gone" / "cgroup.procs")
    with pytest.raises(OSError, match="cannot enter the job's cgroup") as caught:
        popen_launcher(spec(marker, ["true"]), stdin=None, stdout=1, stderr=2, cgroup_procs=missing)
    assert caught.value.strerror
