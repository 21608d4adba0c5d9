"""The zygote process itself: ``python -m opsconsole.engine.runners.zygote_main FD PRELOAD...``.

The only code that runs in the handler host: it imports the preload, then, single-threaded,
forks one process per request received on its socket (the job's pipes come with it), turns
that child into the job's process (its cgroup first) and reports each exit status. It never
runs job code itself; ``runners/zygote.py`` is the worker's side.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import importlib
import json
import os
import runpy
import select
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from opsconsole.engine.runners.zygote import MAX_MESSAGE

_SPAWN_FAILED = 127


class _Server:
    """The zygote's loop: fork on request, reap on SIGCHLD, report exits; one thread only."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        # A Python handler (not SIG_IGN, which would reap by itself) so the wakeup fd fires.
        signal.signal(signal.SIGCHLD, lambda _sig, _frame: None)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        self.children: dict[int, int] = {}
        """pid -> request id of every child not yet reaped."""

    def loop(self) -> int:
        self.send({"ready": os.getpid()})
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        try:
            while True:
                for fd, _events in poller.poll():
                    if fd == self.wake_r:
                        with contextlib.suppress(BlockingIOError):
                            while os.read(self.wake_r, 512):
                                pass
                    elif not self.serve_one():
                        return 0
                self.reap()
        except (BrokenPipeError, ConnectionError):  # the worker is gone: nobody to serve
            return 0

    def send(self, msg: dict[str, Any]) -> None:
        self.sock.send(json.dumps(msg).encode())

    def serve_one(self) -> bool:
        try:
            data, fds, flags, _addr = socket.recv_fds(self.sock, MAX_MESSAGE, 3)
        except ConnectionError:
            return False
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        try:
            request = json.loads(data)
        except ValueError:
            request = None
        if not isinstance(request, dict) or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            for fd in fds:
                os.close(fd)
            print("handler host: ignored a malformed request", file=sys.stderr, flush=True)
            return True
        self.send(self.spawn(request, fds))
        return True

    def spawn(self, req: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        rid = req.get("id")
        if len(fds) != (3 if req.get("stdin") else 2) or threading.active_count() != 1:
            for fd in fds:
                os.close(fd)
            return {"id": rid, "error": "handler host: bad request", "errno": errno.EINVAL}
        err_r, err_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in (*fds, err_r, err_w):
                os.close(fd)
            return {"id": rid, "error": f"cannot fork: {exc.strerror}", "errno": exc.errno}
        if pid == 0:
            self.become_job(req, fds, err_r, err_w)
        os.close(err_w)
        for fd in fds:
            os.close(fd)
        report = _read_all(err_r)
        os.close(err_r)
        if report:
            os.waitpid(pid, 0)
            failure = json.loads(report)
            return {"id": rid, "error": failure["message"], "errno": failure["errno"]}
        self.children[pid] = rid
        return {"id": rid, "pid": pid}

    def become_job(self, req: dict[str, Any], fds: list[int], err_r: int, err_w: int) -> NoReturn:
        """In the forked child: join the cgroup first, then become the job's process."""
        step = "cannot join the job's cgroup"
        try:
            if req.get("cgroup_procs"):
                _join_cgroup(req["cgroup_procs"])
            step = "cannot start a session"
            os.setsid()
            self.forget(err_r)
            step = "cannot set up the job's stdio"
            _stdio(fds if req.get("stdin") else [None, *fds])
            os.environ.clear()
            os.environ.update(req["env"])
            step = f"cannot enter the work dir {req['cwd']}"
            os.chdir(req["cwd"])
            sys.path.insert(0, os.getcwd())  # as `python -m` puts its cwd first
        except BaseException as exc:
            if isinstance(exc, OSError):
                _report(err_w, f"{step}: {exc.strerror or exc}", exc.errno or errno.EIO)
            else:
                _report(err_w, f"{step}: {type(exc).__name__}: {exc}", errno.EIO)
            _exit(_SPAWN_FAILED)
        code = 1
        try:
            os.close(err_w)  # EOF: the zygote tells the worker the job's process is up
            code = _run_module(req["module"], req["args"])
        finally:
            _exit(code)  # never back into the zygote's loop, whatever happened

    def forget(self, err_r: int) -> None:
        """Drop, in the child, everything that belongs to the zygote: socket, wakeup, signals."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.sock.close()
        for fd in (self.wake_r, self.wake_w, err_r):
            os.close(fd)

    def reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            rid = self.children.pop(pid, None)
            if rid is not None:
                cpu = usage.ru_utime + usage.ru_stime
                self.send({"id": rid, "rc": os.waitstatus_to_exitcode(status), "cpu": cpu})


def _join_cgroup(procs_file: str) -> None:
    fd = os.open(procs_file, os.O_WRONLY)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)


def _stdio(fds: list[int | None]) -> None:
    """Make the job's fds our 0/1/2 and give Python fresh stdio objects over them."""
    stdin_fd = fds[0] if fds[0] is not None else os.open(os.devnull, os.O_RDONLY)
    sources = [stdin_fd, *fds[1:]]
    for target, fd in enumerate(sources):
        assert fd is not None
        os.dup2(fd, target)
    for fd in sources:
        if fd is not None and fd > 2:
            os.close(fd)
    enc, errs = sys.stdout.encoding, sys.stdout.errors
    sys.stdin = sys.__stdin__ = open(0, encoding=enc, errors=errs, closefd=False)  # noqa: SIM115
    sys.stdout = sys.__stdout__ = open(1, "w", encoding=enc, errors=errs, closefd=False)  # noqa: SIM115
    sys.stderr = sys.__stderr__ = open(  # noqa: SIM115
        2, "w", buffering=1, encoding=enc, errors="backslashreplace", closefd=False
    )


def _run_module(module: str, args: list[str]) -> int:
    """``python -m module args`` in this process; the exit code as the interpreter would give."""
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:
        traceback.print_exc()
        code = 1
    main = threading.main_thread()
    for t in threading.enumerate():  # an interpreter waits for its non-daemon threads
        if t is not main and not t.daemon:
            t.join()
    return code


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)
    return 1


def _exit(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code & 0xFF)


def _report(fd: int, message: str, err: int) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, json.dumps({"message": message, "errno": err}).encode())


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def serve(fd: int, preload: Sequence[str]) -> int:
    """The zygote's main: preload, check it is still single-threaded, then serve until EOF."""
    sock = socket.socket(fileno=fd)
    if sys.path and sys.path[0] == os.getcwd():
        del sys.path[0]  # `python -m` put our own cwd first; each job puts its own there
    for name in preload:
        importlib.import_module(name)
    if threading.active_count() != 1:
        print("handler host: a preloaded module started a thread", file=sys.stderr, flush=True)
        return 2
    gc.freeze()  # preloaded objects stay shared with the children instead of being copied
    return _Server(sock).loop()


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1]), sys.argv[2:]))
