"""The handler process host ("zygote"), the worker's side: the Launcher of isolated handlers.

One zygote per worker process: an interpreter started once, that has imported what handlers
need, and forks one child per job (``runners/zygote_main.py`` is its code). A handler's
``os._exit``, segfault or ignored cancel thus ends only its own process, for the cost of a
fork instead of an interpreter start. The worker talks to it over a unix socketpair (the job's
pipes travel with the request as SCM_RIGHTS) and learns each child's exit status from it. The
zygote never sees ``OPSCONSOLE_*`` and exits when the worker's end of the socket closes.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

from opsconsole.engine.procs import MARKER_ENV, ProcSpec, kill_marked, proc_start_time

__all__ = [
    "HOST_DIED",
    "MAX_MESSAGE",
    "PRELOAD",
    "Zygote",
    "ZygoteChild",
    "shared",
    "shutdown",
]

PRELOAD = (
    "opsconsole.engine.runners.python",
    "opsconsole.engine.handlers.http",
    "opsconsole.engine.handlers.checks",
)
"""Imported once in the zygote, so that every forked handler starts with them loaded.

Not ``runners.child`` itself: each job runs it as ``__main__``, as ``python -m`` would.
"""

HOST_DIED = "handler process host died"

_MODULE = "opsconsole.engine.runners.zygote_main"
MAX_MESSAGE = 1 << 18
"""Largest request: argv, env, cwd (a job's payload goes through its stdin pipe)."""
_START_TIMEOUT = 60.0  # an interpreter start plus the preload, on a loaded machine
_REPLY_TIMEOUT = 30.0  # a fork and a few system calls: past this the host is hung
_EXIT_TIMEOUT = 5.0


class HostGone(Exception):
    """The zygote died before it answered a request; the request may go to a new one."""


# -- the worker's side ---------------------------------------------------------------------


class ZygoteChild:
    """A job's process forked by the zygote; its exit status arrives as a message (no polling)."""

    def __init__(self, args: list[str], stdout: int) -> None:
        self.args = args
        self.pid = 0
        self.returncode: int | None = None
        self.cpu_s: float | None = None
        """User plus system CPU seconds of the process itself (not of its children)."""
        self.lost: str | None = None
        """Why the real exit status is unknown: the host died while this process ran."""
        self._started = threading.Event()
        self._done = threading.Event()
        self._start_error: Exception | None = None
        self._start_time: int | None = None
        # Our own copy of the job's stdout, to report a lost host in the job's marker protocol.
        self._report_fd: int | None = os.dup(stdout)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def _ended(self, returncode: int, cpu_s: float | None = None) -> None:
        self.cpu_s = cpu_s
        self._close_report()  # before the status is visible: the job's readers see EOF at once
        self.returncode = returncode
        self._done.set()

    def _orphaned(self, why: str) -> None:
        """The host died: kill the process (nobody can tell its status any more) and say so."""
        self.lost = why
        if self._start_time is not None and proc_start_time(self.pid) == self._start_time:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)  # it called setsid: its group is its pid
        line = "::error " + json.dumps({"message": why, "kind": "host", "detail": None}) + "\n"
        if self._report_fd is not None:
            with contextlib.suppress(OSError):
                os.set_blocking(self._report_fd, False)  # a reader that stopped must not hang us
                os.write(self._report_fd, line.encode())
        self._ended(-signal.SIGKILL)

    def _failed_to_start(self, exc: Exception) -> None:
        self._start_error = exc
        self._close_report()
        self._started.set()

    def _close_report(self) -> None:
        fd, self._report_fd = self._report_fd, None
        if fd is not None:
            os.close(fd)


def _describe_exit(rc: int | None) -> str:
    if rc is None:
        return "it stopped answering"
    if rc < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-rc).name}"
        return f"killed by signal {-rc}"
    return f"exit code {rc}"


class _Host:
    """One running zygote: its process, its socket and the requests and children in flight."""

    def __init__(self, python: str, preload: Sequence[str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}
        try:
            self.proc = subprocess.Popen(
                [python, "-m", _MODULE, str(theirs.fileno()), *preload],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
                cwd="/",
                start_new_session=True,  # a terminal's ^C to the worker is not for the host
                close_fds=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self.pid = self.proc.pid
        self.dead = False
        self.closing = False
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, ZygoteChild] = {}
        self._live: dict[int, ZygoteChild] = {}
        try:
            self._await_ready()
        except BaseException:
            self.sock.close()
            with contextlib.suppress(OSError):
                self.proc.kill()
            self.proc.wait()
            raise
        self._reader = threading.Thread(target=self._read, name="zygote-reader", daemon=True)
        self._reader.start()

    def _await_ready(self) -> None:
        self.sock.settimeout(_START_TIMEOUT)
        try:
            data = self.sock.recv(MAX_MESSAGE)
        except TimeoutError:
            data = b""
        finally:
            self.sock.settimeout(None)
        try:
            ready = bool(data) and "ready" in json.loads(data)
        except ValueError:
            ready = False
        if not ready:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(1.0)
            why = _describe_exit(self.proc.poll())
            raise OSError(errno.ECHILD, f"cannot start the handler process host: {why}")

    def spawn(
        self, spec: ProcSpec, stdin: int | None, stdout: int, stderr: int, cgroup_procs: str | None
    ) -> ZygoteChild:
        module, args = _module_of(spec.argv)
        rid = next(self._ids)
        request = {
            "id": rid,
            "module": module,
            "args": args,
            "env": {**spec.env, MARKER_ENV: spec.marker},
            "cwd": spec.cwd,
            "cgroup_procs": cgroup_procs,
            "stdin": stdin is not None,
        }
        data = json.dumps(request).encode()
        if len(data) > MAX_MESSAGE:
            raise OSError(errno.E2BIG, "the job's environment is too large for the handler host")
        fds = [fd for fd in (stdin, stdout, stderr) if fd is not None]
        child = ZygoteChild(list(spec.argv), stdout)
        with self._lock:
            if self.dead:
                child._close_report()
                raise HostGone(HOST_DIED)
            self._pending[rid] = child
        try:
            with self._send_lock:
                socket.send_fds(self.sock, [data], fds)
        except OSError:
            with self._lock:
                self._pending.pop(rid, None)
            child._close_report()
            raise HostGone(HOST_DIED) from None
        if not child._started.wait(_REPLY_TIMEOUT):
            self.kill()  # hung: the reader sees the socket close and fails the request
            child._started.wait(_EXIT_TIMEOUT)
        if child._start_error is not None:
            raise child._start_error
        if not child._started.is_set():
            child._close_report()
            raise HostGone(f"{HOST_DIED} (it stopped answering)")
        return child

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()

    def close(self) -> None:
        """Close our end: the zygote exits; children it still has are told apart as lost."""
        self.closing = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes our reader; the zygote reads EOF
        self._reader.join(_EXIT_TIMEOUT + 1.0)

    # -- the reader thread ------------------------------------------------------------------

    def _read(self) -> None:
        try:
            while True:
                data = self.sock.recv(MAX_MESSAGE)
                if not data:
                    break
                self._dispatch(json.loads(data))
        except (OSError, ValueError):
            pass
        finally:
            self._died()

    def _dispatch(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        with self._lock:
            if "pid" in msg:
                child = self._pending.pop(rid, None)
                if child is None:
                    return
                child.pid = msg["pid"]
                child._start_time = proc_start_time(child.pid)
                self._live[rid] = child
                child._started.set()
            elif "error" in msg:
                child = self._pending.pop(rid, None)
                if child is not None:
                    child._failed_to_start(OSError(msg.get("errno") or errno.EIO, msg["error"]))
            elif "rc" in msg:
                child = self._live.pop(rid, None)
                if child is not None:
                    child._ended(msg["rc"], msg.get("cpu"))

    def _died(self) -> None:
        with self._lock:
            self.dead = True
            pending, self._pending = list(self._pending.values()), {}
            live, self._live = list(self._live.values()), {}
        with self._send_lock:
            self.sock.close()
        try:
            rc: int | None = self.proc.wait(_EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:  # its socket closed yet it lives on: end it
            self.kill()
            rc = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(_EXIT_TIMEOUT)
        if self.closing:
            why = f"{HOST_DIED} (the worker shut it down)"
        else:
            why = f"{HOST_DIED} ({_describe_exit(rc)})"
        for child in pending:
            child._failed_to_start(HostGone(why))
        for child in live:
            child._orphaned(why)


def _module_of(argv: Sequence[str]) -> tuple[str, list[str]]:
    """The zygote runs ``python -m module args...`` command lines and nothing else."""
    if len(argv) < 3 or argv[1] != "-m":
        raise ValueError(f"the handler host runs 'python -m module' only, not {list(argv)!r}")
    return argv[2], list(argv[3:])


class Zygote:
    """A Launcher forking handler processes from one lazily started zygote, restarted if it dies.

    Thread-safe: slots launch concurrently. ``shutdown`` stops the zygote (the next launch
    would start another); a worker that exits without calling it closes the socket, and the
    zygote exits on its own.
    """

    def __init__(self, *, python: str | None = None, preload: Sequence[str] = PRELOAD) -> None:
        self._python = python or sys.executable
        self._preload = tuple(preload)
        self._lock = threading.Lock()
        self._host: _Host | None = None

    @property
    def pid(self) -> int | None:
        """The running zygote's pid, if one runs."""
        host = self._host
        return None if host is None or host.dead else host.pid

    def start(self) -> int:
        """Start the zygote now rather than at the first job; returns its pid."""
        return self._live_host().pid

    def _live_host(self) -> _Host:
        with self._lock:
            if self._host is None or self._host.dead:
                self._host = _Host(self._python, self._preload)
            return self._host

    def __call__(
        self,
        spec: ProcSpec,
        *,
        stdin: int | None,
        stdout: int,
        stderr: int,
        cgroup_procs: str | None,
    ) -> ZygoteChild:
        for attempt in (1, 2):
            host = self._live_host()
            try:
                return host.spawn(spec, stdin, stdout, stderr, cgroup_procs)
            except HostGone as exc:
                # Died before it answered: a child it may have forked must not linger, and the
                # job has not started (its payload comes on stdin, sent only once we return).
                kill_marked(spec.marker, grace=0.5)
                if attempt == 2:
                    raise OSError(errno.ECHILD, str(exc)) from None
        raise AssertionError("unreachable")

    def shutdown(self) -> None:
        """Stop the zygote (the pool's stop); jobs still running in it end as lost."""
        with self._lock:
            host, self._host = self._host, None
        if host is not None:
            host.close()


_shared: Zygote | None = None
_shared_pid = 0
_shared_lock = threading.Lock()


def shared() -> Zygote:
    """This worker process's zygote (a new one in a forked copy of the process)."""
    global _shared, _shared_pid
    with _shared_lock:
        if _shared is None or _shared_pid != os.getpid():
            _shared, _shared_pid = Zygote(), os.getpid()
        return _shared


def shutdown() -> None:
    """Stop this process's zygote, if it started one."""
    with _shared_lock:
        zyg = _shared if _shared_pid == os.getpid() else None
    if zyg is not None:
        zyg.shutdown()
