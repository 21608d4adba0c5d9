"""A cgroup per job: real jobs, real workers killed with SIGKILL, real cgroups.

The daemon of the issue (``setsid env -i sh -c 'sleep 300' &``) leaves the job's process group
and drops the marker from its environment; only the job's cgroup still holds it. The tests that
need cgroups skip, with the reason, where the machine does not allow them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import wait_until, write_template

from opsconsole.config import Settings
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import FINAL, JobState
from opsconsole.core.views import JobView
from opsconsole.engine import supervise
from opsconsole.engine.procs import kill_marked, pid_alive

S = JobState
FOREVER = 300  # a process that waited this out would fail the test by pytest's timeout

pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")


@pytest.fixture
def cgroups() -> Path:
    """The job cgroups' parent; skips where this machine gives no cgroup supervision."""
    found = supervise.detect()
    if found.root is None:
        pytest.skip(f"no cgroup supervision on this machine: {found.reason}")
    return found.root


class Leftovers:
    """What a test started; whatever of it survives a failing test is killed at teardown."""

    def __init__(self) -> None:
        self.pidfiles: list[Path] = []
        self.markers: list[str] = []

    def clean(self) -> None:
        for f in self.pidfiles:
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(f.read_text()), signal.SIGKILL)
        for marker in self.markers:
            kill_marked(marker, grace=0.1)  # the job's cgroup too


@pytest.fixture
def leftovers() -> Iterator[Leftovers]:
    found = Leftovers()
    yield found
    found.clean()


def daemon(pidfile: Path) -> str:
    """The issue's daemon, telling us its pid: new session, empty environment."""
    return f"setsid env -i sh -c 'echo $$ > {pidfile}; exec sleep {FOREVER}' &"


def bash_template(script: str, extra: str = "") -> str:
    body = textwrap.indent(script.strip("\n"), "    ")
    return f"{extra}command:\n  - bash\n  - -c\n  - |\n{body}\n"


def final(service: OpsService, job_id: str, timeout: float = 30.0) -> JobView:
    return wait_until(lambda: (v := service.get(job_id)).state in FINAL and v, timeout)


def read_pid(pidfile: Path) -> int:
    return int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip()))


# -- which mechanism, and why ----------------------------------------------------------------


def test_the_mode_is_set_and_checked() -> None:
    assert supervise.requested() == "auto"
    assert supervise.mechanism() in ("cgroup", "pgroup")
    supervise.configure("pgroup")  # the root conftest sets it back after the test
    assert supervise.mechanism() == "pgroup"
    assert "OPSCONSOLE_SUPERVISION=pgroup" in supervise.detect().reason
    with pytest.raises(supervise.SupervisionError, match="not 'none'"):
        supervise.configure("none")


def test_cgroup_mode_where_the_machine_allows_it(cgroups: Path) -> None:
    assert supervise.mechanism() == "cgroup"
    assert cgroups.name == supervise.JOBS_DIR
    assert str(cgroups) in supervise.detect().reason
    # the probe leaves nothing behind
    assert not list(cgroups.glob(f"probe-{os.getpid()}-*"))


def test_a_probe_cut_short_by_a_kill_is_removed_by_the_next_one(cgroups: Path) -> None:
    """A process killed mid-probe leaves its empty cgroup: the next probe on the machine
    removes it (a live prober's stays)."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = cgroups / f"probe-{dead.pid}-deadbeef"
    live = cgroups / f"probe-{os.getpid()}-cafef00d"
    stale.mkdir()
    live.mkdir()
    try:
        assert supervise.remove_dead_probes(cgroups) >= 1
        assert not stale.exists()
        assert live.exists()
    finally:
        for path in (stale, live):
            if path.exists():
                path.rmdir()


def cgroup2_mount_point() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.split()[:1] == ["cgroup2"]:
                return pre.split()[4]
    return None


NO_CGROUP_CHECK = """
import os, sys, tempfile
from opsconsole.engine import supervise
from opsconsole.engine.procs import ProcSpec, Supervisor, pid_alive
found = supervise.detect()
print(found.mechanism, found.reason)
supervise.configure("cgroup")
try:
    supervise.mechanism()
except supervise.SupervisionError as exc:
    print(exc)
supervise.configure("auto")
pidfile = os.path.join(tempfile.mkdtemp(), "pid")
script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' &"
script += f" while [ ! -s {pidfile} ]; do sleep 0.02; done"
sup = Supervisor(ProcSpec(["sh", "-c", script], dict(os.environ), "/", "nocg-test.1"), print)
sup.start()
assert sup.cgroup is None
sup.wait(grace=0.5)
print("daemon alive:", pid_alive(int(open(pidfile).read())))
"""


def test_without_cgroup_v2_the_fallback_runs_and_says_why() -> None:
    """A mount namespace without the cgroup2 mount is a machine that does not allow it."""
    point = cgroup2_mount_point()
    if point is None or os.geteuid() != 0:
        pytest.skip("needs a cgroup2 mount and root to hide it in a mount namespace")
    hide = 'umount -l "$1" && exec "$2" -c "$3"'
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", hide, "-", point, sys.executable, NO_CGROUP_CHECK],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    first, forced, alive = out.stdout.splitlines()
    assert first == "pgroup process group and marker sweep: no cgroup v2 hierarchy is mounted"
    assert forced.startswith("OPSCONSOLE_SUPERVISION=cgroup, but no cgroup v2 hierarchy")
    assert "OPSCONSOLE_SUPERVISION=auto" in forced
    assert alive == "daemon alive: False"  # it kept the marker: the sweep found it


def test_the_worker_never_kills_itself(cgroups: Path) -> None:
    """``kill`` refuses a cgroup the calling process is in (run in a child, never in pytest)."""
    name = f"selftest-{secrets.token_hex(4)}"
    code = textwrap.dedent(
        f"""
        import os
        from opsconsole.engine import supervise
        own = supervise.jobs_root().parent / "cgroup.procs"
        cg = supervise.create_job_cgroup({name!r})
        with open(cg.procs_file, "w") as f:
            f.write("0")
        try:
            cg.kill()
            print("killed")
        except supervise.SupervisionError as exc:
            print(exc)
        finally:
            with open(own, "w") as f:
                f.write("0")
        print("removed" if cg.remove() else "left")
        """
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [
            f"refusing to kill {cgroups / name}: this worker is inside it",
            "removed",
        ]
    finally:
        supervise.JobCgroup(cgroups / name).destroy(grace=0)


# -- a job's end ends its daemon -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("end", ["succeeded", "cancelled", "timed_out"])
def test_a_jobs_daemon_does_not_outlive_it(
    end: str,
    cgroups: Path,
    service: OpsService,
    catalog: Path,
    start_pool: Callable[..., object],
    tmp_path: Path,
    leftovers: Leftovers,
) -> None:
    pidfile = tmp_path / "daemon.pid"
    leftovers.pidfiles.append(pidfile)
    wait = f"while [ ! -s {pidfile} ]; do sleep 0.02; done"
    script = f"{daemon(pidfile)}\n{wait}\n" + ("" if end == "succeeded" else f"sleep {FOREVER}\n")
    extra = "timeout: 5\n" if end == "timed_out" else ""
    write_template(catalog, "daemon", bash_template(script, extra))
    start_pool(1)
    job = service.submit(SubmitRequest("daemon")).id
    leftovers.markers.append(f"{job}.1")
    pid = read_pid(pidfile)
    if end == "cancelled":
        assert (cgroups / f"{job}.1").is_dir()
        service.cancel(job, reason="test")
    view = final(service, job)
    assert view.state == end
    assert not pid_alive(pid), f"the daemon outlived its {end} job"
    assert not (cgroups / f"{job}.1").exists()


# -- a crashed worker's job ------------------------------------------------------------------


@pytest.fixture
def other_cgroup() -> Iterator[Path]:
    """A cgroup outside ours for a worker to run in, as another service or shell would be."""
    root = supervise.jobs_root()
    assert root is not None
    path = root.parent / f"opsconsole-test-{secrets.token_hex(4)}"  # a sibling of JOBS_DIR
    path.mkdir()
    yield path
    supervise.JobCgroup(path).destroy(grace=0)


@pytest.fixture
def worker_process(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., object]]:
    """A real ``opsconsole`` worker in its own process; killed at the end in any case."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(cgroup: Path | None = None) -> subprocess.Popen[bytes]:
        code = (
            "from opsconsole.config import load_settings\n"
            "from opsconsole.runtime import open_service, start_pool\n"
            f"s = load_settings(home={str(settings.home)!r}, catalog={str(settings.catalog)!r},"
            f" db={settings.db!r}, lease=30, heartbeat_interval=0.2, kill_grace=0.5,"
            " poll_interval=0.05)\n"
            "start_pool(open_service(s), slots=1).run_forever()\n"
        )
        enter = None if cgroup is None else supervise.enter_fn(str(cgroup / "cgroup.procs"))
        with (tmp_path / f"worker-{len(procs)}.log").open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", code],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
                preexec_fn=enter,
            )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["same cgroup", "other cgroup"])
def test_a_crashed_workers_daemon_is_killed_from_another_process(
    where: str,
    cgroups: Path,
    service: OpsService,
    catalog: Path,
    worker_process: Callable[..., subprocess.Popen[bytes]],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    leftovers: Leftovers,
) -> None:
    pidfile, shellfile = tmp_path / "daemon.pid", tmp_path / "shell.pid"
    leftovers.pidfiles.extend([pidfile, shellfile])
    script = f"echo $$ > {shellfile}\n{daemon(pidfile)}\nsleep {FOREVER}\n"
    write_template(catalog, "crashy", bash_template(script))
    job = service.submit(SubmitRequest("crashy")).id
    leftovers.markers.append(f"{job}.1")
    home = None if where == "same cgroup" else request.getfixturevalue("other_cgroup")
    worker = worker_process(home)
    pid, shell = read_pid(pidfile), read_pid(shellfile)
    expected = (home / supervise.JOBS_DIR if home else cgroups) / f"{job}.1"
    assert expected.is_dir()

    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    assert pid_alive(pid) and pid_alive(shell), "the job should outlive its worker"

    found = kill_marked(f"{job}.1", grace=0.5)
    assert found >= 2  # the job's shell (or the sleep it became) and the daemon
    assert not pid_alive(pid), "the crashed worker's daemon survived"
    assert not pid_alive(shell)
    assert not expected.exists()
    assert kill_marked(f"{job}.1", grace=0.5) == 0
