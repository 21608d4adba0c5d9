"""One job's cgroup: the only place that reads or writes the cgroup filesystem.

Where the machine has a cgroup v2 hierarchy this worker may write (root, or a delegated
subtree), each job runs in ``<the worker's cgroup>/opsconsole/<marker>``. A process cannot
leave a cgroup by clearing its environment or calling setsid, so the job is over exactly when
its cgroup is empty, and ``cgroup.kill`` ends every member at once without a /proc scan.
Elsewhere, or when the ``supervision`` setting is ``pgroup``, ``procs.py`` falls back to a process
group and an environment-marker sweep. Nothing here ever moves or signals the worker itself.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from opsconsole.core.hostid import pid_exists

__all__ = [
    "JOBS_DIR",
    "MODES",
    "SUPERVISION_ENV",
    "Detection",
    "JobCgroup",
    "SupervisionError",
    "configure",
    "create_job_cgroup",
    "detect",
    "enter_fn",
    "entry_error",
    "find_job_cgroups",
    "jobs_root",
    "mechanism",
    "requested",
]

log = logging.getLogger(__name__)

SUPERVISION_ENV = "OPSCONSOLE_SUPERVISION"
"""``auto`` (default: a cgroup per job where the machine allows it, else process groups),
``cgroup`` (refuse to start without cgroups) or ``pgroup`` (always the fallback)."""

MODES = ("auto", "cgroup", "pgroup")

JOBS_DIR = "opsconsole"
"""The parent of every job cgroup, under the worker's own cgroup: a well-known name, so a
worker that restarts in the same cgroup (or the reaper, through /proc) finds a crashed
worker's job cgroups from the marker alone."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
_EVENTS_POLL = 0.1  # re-read cgroup.events at least this often, in case a notification is lost
_MKDIR_TRIES = 5


class SupervisionError(RuntimeError):
    """The supervision asked for is not possible here; the message says why and what to set."""


@dataclass(frozen=True)
class Detection:
    """What this machine allows: ``root`` is where job cgroups go, or None with the reason."""

    root: Path | None
    reason: str

    @property
    def mechanism(self) -> str:
        return "cgroup" if self.root is not None else "pgroup"


# -- where the hierarchy is ------------------------------------------------------------------


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _cgroup2_mount() -> tuple[str, str] | None:
    """(mount point, root of the hierarchy it shows) of the first cgroup2 mount we can see."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        pre, sep, post = line.partition(" - ")
        fields = pre.split()
        if sep and post.split()[:1] == ["cgroup2"] and len(fields) >= 5:
            return _unescape(fields[4]), _unescape(fields[3])
    return None


def _cgroup_of(pid: int | str) -> str | None:
    """The v2 path from ``/proc/PID/cgroup`` (the ``0::`` line), relative to our namespace."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as f:
            data = f.read()
    except OSError:
        return None
    for line in data.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def _fs_path(cgpath: str, mount: tuple[str, str]) -> Path | None:
    """Where a v2 path lives in the mounted tree; None when the mount does not show it."""
    point, root = mount
    root = root.rstrip("/")
    if root and cgpath != root and not cgpath.startswith(root + "/"):
        return None
    rel = cgpath[len(root) :].strip("/")
    return Path(point, rel) if rel else Path(point)


def jobs_root() -> Path | None:
    """``<our cgroup>/opsconsole`` in the mounted v2 tree, whether or not it exists or is usable."""
    mount, own = _cgroup2_mount(), _cgroup_of("self")
    if mount is None or own is None or own.endswith(" (deleted)"):
        return None
    base = _fs_path(own, mount)
    return None if base is None else base / JOBS_DIR


# -- whether it is usable --------------------------------------------------------------------


PROBE_PREFIX = "probe-"
"""A probe cgroup is named ``probe-PID-RANDOM`` after the process that made it."""


def remove_dead_probes(root: Path) -> int:
    """Remove the empty probe cgroups of processes that died mid-probe (a ``kill -9``);
    returns how many. A live prober's, or one still holding a process, stays."""
    removed = 0
    for path in root.glob(f"{PROBE_PREFIX}*"):
        pid = path.name.removeprefix(PROBE_PREFIX).partition("-")[0]
        if not pid.isdigit() or pid_exists(int(pid)):
            continue
        with contextlib.suppress(OSError):  # not empty, or gone meanwhile: left as it is
            path.rmdir()
            removed += 1
    return removed


@functools.cache
def _probe() -> Detection:
    """Create a job cgroup, start a real process in it, kill and remove it: the whole path."""
    if _cgroup2_mount() is None:
        return Detection(None, "no cgroup v2 hierarchy is mounted")
    root = jobs_root()
    if root is None:
        return Detection(None, "this process is in no cgroup v2 group that is mounted here")
    remove_dead_probes(root)
    try:
        cg = create_job_cgroup(f"{PROBE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}", root)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        return Detection(None, f"cannot create cgroups in {root.parent}: {why}")
    try:
        if not (cg.path / "cgroup.kill").exists():
            return Detection(None, "the kernel has no cgroup.kill (Linux 5.14 or later)")
        program = shutil.which("true") or sys.executable
        try:
            child = subprocess.Popen(
                [program],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=enter_fn(cg.procs_file),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return Detection(None, f"cannot move a process into {cg.path}: {exc}")
        child.wait()
        cg.kill()
    except OSError as exc:
        return Detection(None, f"cannot use {cg.path}: {exc.strerror or exc}")
    finally:
        if not cg.remove():
            log.warning("could not remove the probe cgroup %s", cg.path)
    return Detection(root, f"cgroup v2: one cgroup per job under {root}")


_configured: str | None = None


def configure(mode: str | None) -> None:
    """Set this process's mode from the ``supervision`` setting (None: back to ``auto``).

    The pool calls it at start; ``config`` is the one reader of ``OPSCONSOLE_SUPERVISION``.
    """
    if mode is not None and mode not in MODES:
        raise SupervisionError(f"supervision must be one of {', '.join(MODES)}, not {mode!r}")
    global _configured
    _configured = mode


def requested() -> str:
    """The mode asked for: ``configure``'s, else ``auto``."""
    return _configured or "auto"


def detect() -> Detection:
    """What jobs started now get: the machine is probed once per process, the mode each time."""
    mode = requested()
    if mode == "pgroup":
        return Detection(None, f"process group and marker sweep ({SUPERVISION_ENV}=pgroup)")
    found = _probe()
    if found.root is None:
        if mode == "cgroup":
            raise SupervisionError(
                f"{SUPERVISION_ENV}=cgroup, but {found.reason}; "
                f"set {SUPERVISION_ENV}=auto to fall back to process groups"
            )
        return Detection(None, f"process group and marker sweep: {found.reason}")
    return found


def mechanism() -> str:
    """``cgroup`` or ``pgroup``: how this worker stops a job's processes (for ``health``)."""
    return detect().mechanism


# -- one job's cgroup ------------------------------------------------------------------------


def enter_fn(procs_file: str) -> Callable[[], None]:
    """A ``preexec_fn`` that moves the forked child into a cgroup before it execs.

    Between fork and exec only the forking thread exists, so this does nothing but three
    raw system calls on a pre-encoded path: no locks, no imports, no logging. Doing it in
    the child, before exec, means no job code runs (and nothing forks) outside the cgroup.
    """
    target = os.fsencode(procs_file)

    def enter() -> None:
        fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)

    return enter


def entry_error(procs_file: str) -> OSError:
    """Why a child could not enter its cgroup (a preexec failure reaches us without errno)."""
    try:
        fd = os.open(procs_file, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        return OSError(exc.errno, f"cannot enter the job's cgroup: {exc.strerror}", procs_file)
    os.close(fd)
    return OSError(errno.EPERM, "cannot enter the job's cgroup", procs_file)


def create_job_cgroup(name: str, root: Path | None = None) -> JobCgroup:
    """A fresh, empty cgroup ``<root>/<name>``; a leftover of that name is killed first."""
    if not _NAME.fullmatch(name) or name.startswith("cgroup."):
        raise ValueError(f"not usable as a cgroup name: {name!r}")
    root = root or detect().root
    if root is None:
        raise SupervisionError("cgroup supervision is not available here")
    path = root / name
    try:
        for _ in range(_MKDIR_TRIES):
            try:
                root.mkdir(exist_ok=True)
                path.mkdir()
                return JobCgroup(path)
            except FileNotFoundError:  # another process removed the empty root just now
                continue
            except FileExistsError:  # the same attempt's leftover: nothing of it may survive
                JobCgroup(path).destroy(grace=0)
                if path.exists():
                    raise
        raise FileNotFoundError(errno.ENOENT, f"{root} keeps disappearing")
    except OSError as exc:
        why = f"cannot create the job's cgroup: {exc.strerror or exc}"
        raise OSError(exc.errno, why, str(path)) from exc


def find_job_cgroups(marker: str) -> list[JobCgroup]:
    """The cgroups named for ``marker``: under our own root, or wherever a live process is.

    A worker that crashed may have run in another cgroup than ours (another service, another
    shell), so the job's surviving processes are asked where they are.
    """
    if not _NAME.fullmatch(marker):
        return []
    mount = _cgroup2_mount()
    if mount is None:
        return []
    found: dict[Path, JobCgroup] = {}
    root = jobs_root()
    if root is not None and (root / marker).is_dir():
        found[root / marker] = JobCgroup(root / marker)
    suffix = f"/{JOBS_DIR}/{marker}"
    for pid in _pids():
        cgpath = _cgroup_of(pid)
        if cgpath is None or not (cgpath.endswith(suffix) or f"{suffix}/" in cgpath):
            continue
        top = cgpath[: cgpath.index(suffix) + len(suffix)]
        path = _fs_path(top, mount)
        if path is not None and path not in found and path.is_dir():
            found[path] = JobCgroup(path)
    return list(found.values())


def _pids() -> Iterator[int]:
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return
    for e in entries:
        if e.name.isdigit():
            yield int(e.name)


class JobCgroup:
    """One job's cgroup and its subtree (a job may create cgroups of its own below it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._v2path: str | None = None

    def __repr__(self) -> str:
        return f"JobCgroup({str(self.path)!r})"

    @property
    def procs_file(self) -> str:
        return str(self.path / "cgroup.procs")

    def _dirs(self) -> list[Path]:
        """This cgroup and its descendants, deepest first (the order rmdir needs)."""
        out: list[Path] = []
        for top, _dirs, _files in os.walk(self.path, topdown=False):
            out.append(Path(top))
        return out

    def pids(self) -> list[int]:
        pids: list[int] = []
        for d in self._dirs():
            with contextlib.suppress(OSError):
                pids.extend(int(x) for x in (d / "cgroup.procs").read_text().split())
        return pids

    def populated(self) -> bool:
        """True while any process lives in the subtree; zombies do not count."""
        try:
            return _populated((self.path / "cgroup.events").read_bytes())
        except FileNotFoundError:
            return False

    def _owns(self, pid: int) -> bool:
        """Whether ``pid`` is (still) in this subtree, read from the process's side."""
        mine = self._cgpath()
        theirs = _cgroup_of(pid)
        return (
            mine is not None
            and theirs is not None
            and (theirs == mine or theirs.startswith(mine + "/"))
        )

    def _cgpath(self) -> str | None:
        """Our path as ``/proc/PID/cgroup`` shows it (the inverse of ``_fs_path``)."""
        if self._v2path is None:
            mount = _cgroup2_mount()
            if mount is None:
                return None
            point, root = mount
            try:
                rel = self.path.relative_to(point)
            except ValueError:
                return None
            parts = [p for p in (*root.split("/"), *rel.parts) if p and p != "."]
            self._v2path = "/" + "/".join(parts)
        return self._v2path

    def signal(self, sig: int) -> int:
        """Send ``sig`` to every member (never to us); pidfds so a recycled pid is left alone."""
        me, sent = os.getpid(), 0
        for pid in self.pids():
            if pid == me:
                continue
            try:
                fd = os.pidfd_open(pid)
            except OSError:  # gone already
                continue
            try:
                # the pidfd pins one process: if it is in our subtree, it is the one we meant
                if self._owns(pid):
                    signal.pidfd_send_signal(fd, sig)
                    sent += 1
            except ProcessLookupError:
                pass
            finally:
                os.close(fd)
        return sent

    def terminate(self) -> int:
        """TERM every member, then CONT: a stopped process only acts on TERM once continued."""
        sent = self.signal(signal.SIGTERM)
        self.signal(signal.SIGCONT)
        return sent

    def kill(self) -> None:
        """``cgroup.kill``: SIGKILL to the whole subtree at once, forks in flight included."""
        if self._owns(os.getpid()):
            raise SupervisionError(f"refusing to kill {self.path}: this worker is inside it")
        with contextlib.suppress(FileNotFoundError):
            (self.path / "cgroup.kill").write_bytes(b"1")

    def wait_empty(self, timeout: float) -> bool:
        """Block until no process is left (``populated 0``) or ``timeout``; True when empty."""
        try:
            fd = os.open(self.path / "cgroup.events", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return True
        end = time.monotonic() + max(timeout, 0)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLPRI)
            while True:
                # reading re-arms the notification: kernfs signals POLLPRI on the next change
                if not _populated(os.pread(fd, 4096, 0)):
                    return True
                left = end - time.monotonic()
                if left <= 0:
                    return False
                poller.poll(min(left, _EVENTS_POLL) * 1000)
        finally:
            os.close(fd)

    def remove(self) -> bool:
        """rmdir the subtree, deepest first; False (and the cgroup stays) while it is populated."""
        for d in self._dirs():
            try:
                d.rmdir()
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                return False
        return True

    def destroy(self, grace: float, settle: float = 5.0) -> bool:
        """TERM, ``grace``, cgroup.kill, then remove; False when something would not die."""
        if self.populated():
            self.terminate()
            if not self.wait_empty(grace):
                self.kill()
                if not self.wait_empty(settle):
                    log.error("processes of %s survived cgroup.kill: %s", self.path, self.pids())
                    return False
        return self.remove()


def _populated(events: bytes) -> bool:
    for line in events.splitlines():
        key, _, value = line.partition(b" ")
        if key == b"populated":
            return value.strip() != b"0"
    return False
