"""Supervising a job's child processes so that nothing a job started outlives it.

Where the machine allows it, each job runs in its own cgroup (``supervise.py``): the job is over
when the cgroup is empty, whatever its processes did to their session or environment. Elsewhere
a process group alone is not enough, since a job may `setsid` a daemon out of its group: every
child carries ``OPSCONSOLE_JOB_MARKER=<marker>`` in its environment, which descendants inherit,
and stragglers are found by scanning ``/proc/*/environ`` (a daemon that clears its environment
escapes this fallback). Linux only. How a child is started is pluggable (``Launcher``).
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import select
import signal as _signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from opsconsole.engine import supervise
from opsconsole.engine.supervise import JobCgroup

__all__ = [
    "MARKER_ENV",
    "ChildHandle",
    "Launcher",
    "ProcOutcome",
    "ProcSpec",
    "Supervisor",
    "find_marked",
    "kill_marked",
    "pid_alive",
    "popen_launcher",
    "proc_start_time",
]

log = logging.getLogger(__name__)

MARKER_ENV = "OPSCONSOLE_JOB_MARKER"

_CHUNK = 64 * 1024
_WAIT_POLL = 0.05  # wait() loop and TERM-grace polling; a /proc scan per tick must stay cheap
_KILL_POLL = 0.02
_KILL_ROUNDS = 5  # re-scan and KILL again, in case something forked between scan and kill
_KILL_SETTLE = 1.0  # how long one KILL round waits for its victims to vanish
_CGROUP_SETTLE = 5.0  # after cgroup.kill, how long the kernel gets to empty the cgroup
_READER_JOIN = 2.0  # pipes close once descendants are dead; an unmarked escapee costs this much
_IO_POLL_MS = 100
_EXEC_LOOKS = 5  # an empty environment read again this many times: a process mid-execve
_EXEC_WAIT = 0.001  # between those reads; an execve's window lasts microseconds


@dataclass(frozen=True)
class ProcSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    marker: str
    stdin_data: bytes | None = None
    max_line_bytes: int = 65536


@dataclass(frozen=True)
class ProcOutcome:
    exit_code: int | None
    signal: int | None
    reason: str
    pid: int


class ChildHandle(Protocol):
    """A started child, as the supervisor sees it; ``subprocess.Popen`` satisfies it."""

    pid: int

    def poll(self) -> int | None:
        """The return code once the child ended (``-N`` for signal N), else None."""
        ...

    def wait(self, timeout: float | None = None) -> int: ...


class Launcher(Protocol):
    """Starts ``spec`` as a child with ``stdin`` (None: /dev/null), ``stdout``, ``stderr`` as 0/1/2.

    The child runs in a new session with ``MARKER_ENV=spec.marker`` in its environment. With
    ``cgroup_procs`` (the job cgroup's ``cgroup.procs``), the child must be in that cgroup
    before it runs any job code, so that nothing it forks is ever outside it.
    """

    def __call__(
        self,
        spec: ProcSpec,
        *,
        stdin: int | None,
        stdout: int,
        stderr: int,
        cgroup_procs: str | None,
    ) -> ChildHandle: ...


def popen_launcher(
    spec: ProcSpec, *, stdin: int | None, stdout: int, stderr: int, cgroup_procs: str | None
) -> subprocess.Popen[bytes]:
    """The default launcher: fork and exec; with a cgroup, a preexec step joins it before exec.

    The preexec step is the only way with the standard library to have the child inside its
    cgroup before it runs anything (moving it after Popen returns races with the job's first
    fork; an ``sh -c 'echo 0 > cgroup.procs; exec "$@"'`` wrapper changes how a missing or
    shebang-less program fails). Its price: fork instead of vfork, some 10 ms per job in a
    70 MB worker. A launcher that forks from a small process avoids it.
    """
    enter = None if cgroup_procs is None else supervise.enter_fn(cgroup_procs)
    try:
        return subprocess.Popen(
            list(spec.argv),
            env={**spec.env, MARKER_ENV: spec.marker},
            cwd=spec.cwd,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
            preexec_fn=enter,
        )
    except subprocess.SubprocessError as exc:
        if cgroup_procs is None:
            raise
        raise supervise.entry_error(cgroup_procs) from exc


class _Proc(NamedTuple):
    pid: int
    start: int
    pgrp: int


def _read_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, pgrp, starttime); the comm field may hold spaces and parens, so split after ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return fields[0].decode("ascii"), int(fields[2]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _has_marker(pid: int, needle: bytes, *, user: bool = False) -> bool:
    """Does the process's environment hold ``needle``?

    A zombie has no mm, so its environ reads empty and it never matches: zombies count as
    dead. A ``user`` process (not a kernel thread) in the middle of ``execve`` also reads
    empty, for a moment: its new memory is in place before its environment is copied in.
    The scan that sweeps a job's escapees after its end once missed a ``setsid sleep`` that
    way, and left it running; an empty read of a user process is looked at again.
    """
    looks = _EXEC_LOOKS if user else 1
    while True:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                data = f.read()
        except OSError:
            return False
        looks -= 1
        if data or not looks:
            return needle in data.split(b"\0")
        time.sleep(_EXEC_WAIT)


def _pids() -> list[int]:
    try:
        return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return []


def _needle(marker: str) -> bytes:
    return f"{MARKER_ENV}={marker}".encode()


def _scan(marker: str, pgid: int | None = None) -> list[_Proc]:
    """Live (non-zombie) processes carrying the marker or belonging to process group ``pgid``."""
    needle, me, found = _needle(marker), os.getpid(), []
    for pid in _pids():
        if pid == me:
            continue
        st = _read_stat(pid)
        if st is None or st[0] in "ZX":
            continue
        # a kernel thread is in no process group (0) and has no environment to wait for
        if st[1] == pgid or _has_marker(pid, needle, user=st[1] != 0):
            found.append(_Proc(pid, st[2], st[1]))
    return found


def _signal_procs(procs: list[_Proc], sig: int, pgid: int | None = None) -> None:
    """Signal only processes whose start time still matches, so a recycled pid is left alone."""
    # killpg only while a live member proves the group still exists, i.e. pgid cannot be reused.
    if pgid is not None and any(p.pgrp == pgid for p in procs):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for p in procs:
        if proc_start_time(p.pid) == p.start:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p.pid, sig)


def _terminate(procs: list[_Proc], sig: int, pgid: int | None = None) -> None:
    _signal_procs(procs, sig, pgid)
    if sig == _signal.SIGTERM:  # a stopped process only acts on TERM once continued
        _signal_procs(procs, _signal.SIGCONT, pgid)


def find_marked(marker: str) -> list[int]:
    """Live pids (other than ours) whose environment holds exactly ``MARKER_ENV=marker``
    (one caught in the middle of execve included: ``_has_marker``)."""
    return [p.pid for p in _scan(marker)]


def pid_alive(pid: int) -> bool:
    """Zombies count as dead: orphans reparented to a non-reaping init may linger as Z forever."""
    if pid <= 0:
        return False
    st = _read_stat(pid)
    return st is not None and st[0] not in "ZX"


def proc_start_time(pid: int) -> int | None:
    """Clock ticks since boot; together with the pid it tells a process from a recycled pid."""
    st = _read_stat(pid)
    return None if st is None else st[2]


def kill_marked(marker: str, grace: float = 2.0) -> int:
    """Kill what is left of a job whose worker is gone; returns how many processes it found.

    The job's cgroup (if it had one) and every marked process get TERM together, then
    ``grace``, then KILL. They are not our children, so we poll, never waitpid.
    """
    groups = supervise.find_job_cgroups(marker)
    first = _scan(marker)
    seen = {p.pid for p in first}
    for group in groups:
        seen.update(group.pids())
    if seen:
        for group in groups:
            group.terminate()
        _terminate(first, _signal.SIGTERM)
        end = time.monotonic() + grace
        while time.monotonic() < end and (_any_alive(first) or any(g.populated() for g in groups)):
            time.sleep(_KILL_POLL)
        for group in groups:
            group.kill()
        for group in groups:
            group.wait_empty(_CGROUP_SETTLE)
        for _ in range(_KILL_ROUNDS):
            live = _scan(marker)
            seen.update(p.pid for p in live)
            if not live:
                break
            _terminate(live, _signal.SIGKILL)
            _settle(lambda live=live: _any_alive(live))
    for group in groups:
        if not group.remove():
            log.error("processes of %s survived cgroup.kill: %s", group.path, group.pids())
    return len(seen)


def _any_alive(procs: list[_Proc]) -> bool:
    return any(pid_alive(p.pid) and proc_start_time(p.pid) == p.start for p in procs)


def _settle(busy: Callable[[], bool], timeout: float = _KILL_SETTLE) -> None:
    end = time.monotonic() + timeout
    while busy() and time.monotonic() < end:
        time.sleep(_KILL_POLL)


class _LineSplitter:
    """Splits a byte stream into lines while holding at most ``limit`` bytes of any one line."""

    def __init__(self, limit: int, emit: Callable[[str], None]) -> None:
        self._limit = max(limit, 0)
        self._emit = emit
        self._buf = bytearray()
        self._dropped = 0
        self._last_cr = False
        self._pending = False

    def feed(self, chunk: bytes) -> None:
        start = 0
        while (nl := chunk.find(b"\n", start)) >= 0:
            self._append(chunk[start:nl])
            self._flush()
            start = nl + 1
        self._append(chunk[start:])

    def close(self) -> None:
        if self._pending:
            self._flush()

    def _append(self, piece: bytes) -> None:
        if not piece:
            return
        self._pending = True
        room = self._limit - len(self._buf)
        if room > 0:
            self._buf += piece[:room]
        self._dropped += max(len(piece) - max(room, 0), 0)
        self._last_cr = piece[-1:] == b"\r"

    def _flush(self) -> None:
        data, dropped = bytes(self._buf), self._dropped
        if dropped and self._last_cr:
            dropped -= 1  # the CR would have been stripped anyway, it is not lost content
        self._buf.clear()
        self._dropped, self._last_cr, self._pending = 0, False, False
        if not dropped:
            self._emit(data.rstrip(b"\r").decode("utf-8", errors="replace"))
            return
        # Cut back to a whole character instead of ending in a replacement char.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = decoder.decode(data, final=False)
        dropped += len(decoder.getstate()[0])
        self._emit(text + f" \u2026 [{dropped} bytes truncated]")


class Supervisor:
    """Runs one child in its own session and guarantees its whole tree is gone when wait returns.

    ``on_line`` is called from two reader threads (stdout and stderr) and must be thread-safe.
    With a cgroup (``supervise.mechanism() == "cgroup"``) the tree is the job's cgroup; else
    the child's process group plus every process carrying the marker.
    """

    def __init__(
        self,
        spec: ProcSpec,
        on_line: Callable[[str, str], None],
        launcher: Launcher | None = None,
    ) -> None:
        self._spec = spec
        self._on_line = on_line
        self._launcher: Launcher = launcher or popen_launcher
        self._proc: ChildHandle | None = None
        self._cgroup: JobCgroup | None = None
        self._threads: list[threading.Thread] = []
        self._io_stop = threading.Event()
        self._stop_requested = threading.Event()
        self._kill_lock = threading.Lock()
        self._err_lock = threading.Lock()
        self._error: Exception | None = None
        self._outcome: ProcOutcome | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def cgroup(self) -> JobCgroup | None:
        """The job's cgroup (removed once the job is over); None on the process-group fallback."""
        return self._cgroup

    def start(self) -> int:
        """Start the child; OSError (e.g. FileNotFoundError) propagates for the caller to report."""
        if self._proc is not None:
            raise RuntimeError("Supervisor already started")
        spec = self._spec
        if not spec.argv:
            raise ValueError("ProcSpec.argv is empty")
        if supervise.mechanism() == "cgroup":
            self._cgroup = supervise.create_job_cgroup(spec.marker)
        # Our own pipes, not Popen's file objects: reader threads own and close the read ends.
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if spec.stdin_data else (None, None)
        try:
            self._proc = self._launcher(
                spec,
                stdin=in_r,
                stdout=out_w,
                stderr=err_w,
                cgroup_procs=None if self._cgroup is None else self._cgroup.procs_file,
            )
        except BaseException:
            for fd in (out_r, err_r, in_w):
                if fd is not None:
                    os.close(fd)
            if self._cgroup is not None:  # a launcher may have started something before failing
                self._cgroup.destroy(grace=0)
                self._cgroup = None
            raise
        finally:
            for fd in (out_w, err_w, in_r):
                if fd is not None:
                    os.close(fd)
        pid = self._proc.pid
        self._spawn(self._pump_output, out_r, "stdout")
        self._spawn(self._pump_output, err_r, "stderr")
        if in_w is not None:
            self._spawn(self._pump_stdin, in_w, spec.stdin_data or b"")
        return pid

    def wait(
        self,
        *,
        cancelled: Callable[[], bool] = lambda: False,
        deadline: float | None = None,
        grace: float = 10.0,
    ) -> ProcOutcome:
        """Poll, not block on waitpid or EOF: cancel, deadline and held pipes must not stall us."""
        proc = self._proc
        if proc is None:
            raise RuntimeError("Supervisor not started")
        if self._outcome is not None:
            return self._outcome
        reason = "exited"
        try:
            while proc.poll() is None:
                if self._stop_requested.is_set() or cancelled():
                    reason = "cancelled"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    reason = "timed_out"
                    break
                # returns as soon as the child ends: a job's end costs no polling delay
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(_WAIT_POLL)
            if self._stop_requested.is_set():  # stop() may have killed it before we looked
                reason = "cancelled"
            # Also the normal-exit path: background and setsid'd descendants must not survive.
            self._kill_tree(grace)
            rc = proc.wait()
        except BaseException:
            self._kill_tree(min(grace, 1.0))
            self._finish_io()
            raise
        self._finish_io()
        outcome = ProcOutcome(
            exit_code=rc if rc >= 0 else None,
            signal=-rc if rc < 0 else None,
            reason=reason,
            pid=proc.pid,
        )
        self._outcome = outcome
        with self._err_lock:
            error = self._error
        if error is not None:
            error.add_note(f"on_line failed for {self._spec.marker}; process outcome: {outcome}")
            raise error
        return outcome

    def stop(self, grace: float = 10.0) -> None:
        """Shutdown path: a concurrent wait() sees the request and reports 'cancelled'."""
        if self._proc is None:
            return
        self._stop_requested.set()
        self._kill_tree(grace)
        self._proc.wait()
        self._finish_io()

    # -- killing ----------------------------------------------------------------------------

    def _live(self) -> list[_Proc]:
        assert self._proc is not None
        self._proc.poll()  # reap the main child as soon as it dies, so it stops counting
        return _scan(self._spec.marker, self._proc.pid)

    def _kill_tree(self, grace: float) -> None:
        """TERM the job's processes, KILL what is left after ``grace``."""
        with self._kill_lock:
            if self._cgroup is not None:
                self._kill_cgroup(grace)
            else:
                self._kill_marked_tree(grace)

    def _kill_cgroup(self, grace: float) -> None:
        """No /proc scan: the cgroup holds exactly the job's processes, however they escaped."""
        cg = self._cgroup
        assert cg is not None
        if cg.populated():
            cg.terminate()
            if not cg.wait_empty(grace):
                cg.kill()
                if not cg.wait_empty(_CGROUP_SETTLE):
                    log.error("processes of job %s survived cgroup.kill", self._spec.marker)
                    return  # the cgroup stays, so kill_marked can still find them
        if not cg.remove():  # idempotent: a second stop finds nothing and nothing to remove
            log.error("cgroup %s of job %s could not be removed", cg.path, self._spec.marker)

    def _kill_marked_tree(self, grace: float) -> None:
        """TERM the group and every marked process, KILL what is left after ``grace``."""
        assert self._proc is not None
        pgid = self._proc.pid
        live = self._live()
        if not live:
            return
        _terminate(live, _signal.SIGTERM, pgid)
        end = time.monotonic() + grace
        while time.monotonic() < end:
            time.sleep(min(_WAIT_POLL, max(end - time.monotonic(), 0)))
            if not self._live():
                return
        for _ in range(_KILL_ROUNDS):
            live = self._live()
            if not live:
                return
            _terminate(live, _signal.SIGKILL, pgid)
            _settle(lambda live=live: _any_alive(live) or self._proc_running())

    def _proc_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- I/O threads ------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        name = f"procs-{self._spec.marker}-{target.__name__.strip('_')}"
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _finish_io(self) -> None:
        end = time.monotonic() + _READER_JOIN
        for t in self._threads:
            t.join(max(end - time.monotonic(), 0))
        # Something unmarked still holds a pipe: stop reading rather than hang.
        self._io_stop.set()
        for t in self._threads:
            t.join(1.0)

    def _record(self, exc: Exception) -> None:
        with self._err_lock:
            if self._error is None:
                self._error = exc

    def _deliver(self, stream: str, text: str) -> None:
        try:
            self._on_line(stream, text)
        except Exception as exc:  # keep draining, or the child blocks on a full pipe
            self._record(exc)

    def _pump_output(self, fd: int, stream: str) -> None:
        splitter = _LineSplitter(self._spec.max_line_bytes, lambda s: self._deliver(stream, s))
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        try:
            while True:
                if self._io_stop.is_set():
                    os.set_blocking(fd, False)
                    for _ in range(16):  # take what is already buffered, then give up
                        try:
                            chunk = os.read(fd, _CHUNK)
                        except OSError:
                            break
                        if not chunk:
                            break
                        splitter.feed(chunk)
                    break
                if not poller.poll(_IO_POLL_MS):
                    continue
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break
                splitter.feed(chunk)
            splitter.close()
        except Exception as exc:
            self._record(exc)
        finally:
            os.close(fd)

    def _pump_stdin(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        try:
            os.set_blocking(fd, False)
            while view and not self._io_stop.is_set():
                if not poller.poll(_IO_POLL_MS):
                    continue
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    continue
                except OSError:  # EPIPE: the child closed stdin or died; not our error
                    break
        finally:
            os.close(fd)
