"""The handler process host: real forks from a real zygote, driven as a Supervisor drives it.

Each test launches through ``Zygote`` with its own pipes (what ``procs.Supervisor`` does with
a launcher), feeds the job on stdin and reads the marker protocol from stdout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import bystander_source, wait_until

from opsconsole.engine.procs import MARKER_ENV, ProcSpec, pid_alive
from opsconsole.engine.runners.shell import python_argv
from opsconsole.engine.runners.zygote import HOST_DIED, Zygote, ZygoteChild

pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")


class Launched:
    """One job started through the zygote: its handle and what it wrote on stdout and stderr."""

    def __init__(
        self,
        zyg: Zygote,
        spec: ProcSpec,
        payload: dict[str, Any] | None,
        cgroup_procs: str | None = None,
    ) -> None:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if payload is not None else (None, None)
        try:
            self.handle: ZygoteChild = zyg(
                spec, stdin=in_r, stdout=out_w, stderr=err_w, cgroup_procs=cgroup_procs
            )
        except BaseException:
            for fd in (out_r, err_r, in_w):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w, in_r):
                if fd is not None:
                    os.close(fd)
        if in_w is not None:
            os.write(in_w, json.dumps(payload).encode())
            os.close(in_w)
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(out_r, self._out), daemon=True),
            threading.Thread(target=self._drain, args=(err_r, self._err), daemon=True),
        ]
        for t in self._readers:
            t.start()

    @staticmethod
    def _drain(fd: int, into: list[bytes]) -> None:
        try:
            while chunk := os.read(fd, 65536):
                into.append(chunk)
        finally:
            os.close(fd)

    def finish(self, timeout: float = 20.0) -> int:
        rc = self.handle.wait(timeout)
        for t in self._readers:
            t.join(timeout)
        return rc

    @property
    def out(self) -> str:
        return b"".join(self._out).decode()

    @property
    def err(self) -> str:
        return b"".join(self._err).decode()

    def marker(self, name: str) -> Any:
        for line in self.out.splitlines():
            if line.startswith(f"::{name} "):
                return json.loads(line.split(" ", 1)[1])
        return None


@pytest.fixture
def zyg() -> Iterator[Zygote]:
    z = Zygote()
    try:
        yield z
    finally:
        z.shutdown()


@pytest.fixture
def job(zyg: Zygote, catalog: Path, tmp_path: Path) -> Any:
    """Launch a handler (its source) through the zygote; returns a ``Launched``."""

    def launch(
        source: str,
        *,
        params: dict[str, Any] | None = None,
        cwd: Path | None = None,
        cgroup_procs: str | None = None,
    ) -> Launched:
        name = f"zh_{uuid.uuid4().hex[:10]}"
        (catalog / f"{name}.py").write_text(textwrap.dedent(source))
        workdir = cwd or tmp_path / f"work-{name}"
        if cwd is None:
            workdir.mkdir()
        spec = ProcSpec(
            argv=python_argv(),
            env={"PATH": os.environ.get("PATH", ""), "JOB_VAR": name},
            cwd=str(workdir),
            marker=f"{name}.1",
        )
        payload = {
            "handler": f"{name}:run",
            "catalog_dir": str(catalog),
            "params": params or {},
            "job_id": name,
            "attempt": 1,
            "template": "t",
            "dry_run": False,
        }
        return Launched(zyg, spec, payload, cgroup_procs)

    return launch


def test_a_forked_handler_gets_its_own_session_env_cwd_and_fds_only(
    zyg: Zygote, job: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSCONSOLE_SECRET_KEY", "the-worker-key")
    run = job(
        """
        import os, sys

        def run(ctx):
            print("printed", ctx.params["n"])
            print("to stderr", file=sys.stderr)
            fds = []
            for fd in range(1024):  # fstat opens nothing, unlike a listing of /proc/self/fd
                try:
                    os.fstat(fd)
                except OSError:
                    continue
                fds.append(fd)
            return {"pid": os.getpid(), "sid": os.getsid(0), "cwd": os.getcwd(),
                    "env": dict(os.environ), "fds": fds, "path0": sys.path[0],
                    "stdout_tty": sys.stdout.isatty()}
        """,
        params={"n": 7},
    )
    assert run.finish() == 0, run.err
    res = run.marker("result")
    assert res["pid"] == run.handle.pid
    assert res["pid"] not in (os.getpid(), zyg.pid)
    assert res["sid"] == res["pid"]
    assert res["cwd"] == res["path0"]
    assert Path(res["cwd"]).parent == tmp_path
    name = Path(res["cwd"]).name.removeprefix("work-")
    assert res["env"] == {
        "PATH": os.environ.get("PATH", ""),
        "JOB_VAR": name,
        MARKER_ENV: f"{name}.1",
    }
    assert res["fds"] == [0, 1, 2]  # no socket of the zygote, no pipe of another job
    assert res["stdout_tty"] is False
    assert "printed 7" in run.out.splitlines()
    assert run.err == "to stderr\n"
    assert isinstance(run.handle.cpu_s, float)
    # the zygote itself never saw the worker's OPSCONSOLE_* variables
    assert zyg.pid is not None
    environ = Path(f"/proc/{zyg.pid}/environ").read_bytes().split(b"\0")
    assert not [v for v in environ if v.startswith(b"OPSCONSOLE_")]


def test_a_module_run_as_python_dash_m_gets_its_args_exit_code_and_dev_null_stdin(
    zyg: Zygote, tmp_path: Path
) -> None:
    (tmp_path / "probe.py").write_text(
        "import sys\nprint(sys.argv[1:], repr(sys.stdin.read()))\nsys.exit(3)\n"
    )
    spec = ProcSpec(
        argv=[sys.executable, "-m", "probe", "a", "b c"], env={}, cwd=str(tmp_path), marker="m"
    )
    run = Launched(zyg, spec, None)
    assert run.finish() == 3
    assert run.out == "['a', 'b c'] ''\n"


@pytest.mark.parametrize(
    ("crash", "returncode"),
    [("os._exit(1)", 1), ("ctypes.string_at(0)", -signal.SIGSEGV)],
    ids=["os._exit", "segfault"],
)
def test_a_crashing_handler_ends_only_its_own_process(
    zyg: Zygote, job: Any, tmp_path: Path, crash: str, returncode: int
) -> None:
    release = tmp_path / "release"
    bystander = job(bystander_source(release))
    wait_until(lambda: "::progress 1 waiting" in bystander.out)
    host = zyg.pid
    bad = job(
        f"""
        import ctypes, os

        def run(ctx):
            {crash}
        """
    )
    assert bad.finish() == returncode
    assert bad.marker("result") is None
    assert zyg.pid == host  # the zygote carried on
    release.touch()
    assert bystander.finish() == 0
    assert bystander.marker("result") == "bystander done"


def test_a_handler_that_ignores_term_dies_on_kill_and_leaves_nothing(
    job: Any, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    run = job(
        f"""
        import os

        def run(ctx):
            ctx.progress(1, "spinning")
            while not os.path.exists({str(release)!r}):  # busy, never looks at ctx.cancelled
                pass
        """
    )
    try:
        wait_until(lambda: "::progress 1 spinning" in run.out)
        pid = run.handle.pid
        os.killpg(pid, signal.SIGTERM)  # as the Supervisor does: TERM, the grace, then KILL
        assert run.handle.poll() is None and pid_alive(pid)
        os.killpg(pid, signal.SIGKILL)
        assert run.finish() == -signal.SIGKILL
        assert not pid_alive(pid)
    finally:
        release.touch()


def test_wait_with_a_timeout_raises_while_the_process_runs(job: Any, tmp_path: Path) -> None:
    release = tmp_path / "release"
    run = job(
        f"""
        import os, time

        def run(ctx):
            while not os.path.exists({str(release)!r}):
                time.sleep(0.01)
        """
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            run.handle.wait(0.05)
        assert run.handle.poll() is None
    finally:
        release.touch()
    assert run.finish() == 0


def test_the_next_job_runs_after_the_zygote_was_killed(zyg: Zygote, job: Any) -> None:
    source = "def run(ctx):\n    return 'ok'\n"
    first = job(source)
    assert first.finish() == 0
    old = zyg.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    second = job(source)  # at once: whether or not the worker noticed the death yet
    assert second.finish() == 0
    assert second.marker("result") == "ok"
    assert zyg.pid not in (None, old)


def test_a_job_running_when_its_zygote_dies_fails_naming_it(
    zyg: Zygote, job: Any, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    run = job(
        f"""
        import os, time

        def run(ctx):
            ctx.progress(1, "waiting")
            while not os.path.exists({str(release)!r}):
                time.sleep(0.01)
        """
    )
    try:
        wait_until(lambda: "::progress 1 waiting" in run.out)
        pid, host = run.handle.pid, zyg.pid
        assert host is not None
        os.kill(host, signal.SIGKILL)
        assert run.finish() == -signal.SIGKILL
        # nobody could report on it any more: it was killed (SIGKILL lands a moment later)
        wait_until(lambda: not pid_alive(pid), 15)
    finally:
        release.touch()
    assert run.handle.lost == f"{HOST_DIED} (killed by SIGKILL)"
    assert run.marker("error") == {"message": run.handle.lost, "kind": "host", "detail": None}
    after = job("def run(ctx):\n    return 'next'\n")
    assert after.finish() == 0
    assert after.marker("result") == "next"


def _cgroup2_root() -> Path | None:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2" and os.access(fields[1], os.W_OK):
            return Path(fields[1])
    return None


@pytest.fixture
def cgroup() -> Iterator[Path]:
    root = _cgroup2_root()
    if root is None:
        pytest.skip("no writable cgroup v2 hierarchy")
    path = root / f"opsconsole-test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        yield path
    finally:
        wait_until(lambda: not (path / "cgroup.procs").read_text().strip(), 10)
        path.rmdir()


def test_the_job_process_joins_its_cgroup_before_any_job_code(job: Any, cgroup: Path) -> None:
    run = job(
        """
        def run(ctx):
            return open("/proc/self/cgroup").read()
        """,
        cgroup_procs=str(cgroup / "cgroup.procs"),
    )
    assert run.finish() == 0, run.err
    assert f"0::/{cgroup.name}" in run.marker("result").splitlines()


def test_a_cgroup_it_cannot_join_is_an_error_and_nothing_runs(job: Any, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-cgroup" / "cgroup.procs"
    with pytest.raises(OSError, match="cannot join the job's cgroup") as info:
        job("def run(ctx):\n    open('ran', 'w')\n", cgroup_procs=str(missing))
    assert isinstance(info.value, FileNotFoundError)
    assert not list(tmp_path.glob("work-*/ran"))


def test_a_missing_work_dir_is_an_error(job: Any, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cannot enter the work dir"):
        job("def run(ctx):\n    pass\n", cwd=tmp_path / "gone")


def test_it_runs_python_dash_m_command_lines_only(zyg: Zygote) -> None:
    spec = ProcSpec(argv=["bash", "-c", "true"], env={}, cwd="/", marker="m")
    with pytest.raises(ValueError, match="python -m"):
        zyg(spec, stdin=None, stdout=1, stderr=2, cgroup_procs=None)


def test_shutdown_stops_the_zygote_and_a_later_job_starts_another(zyg: Zygote, job: Any) -> None:
    pid = zyg.start()
    zyg.shutdown()
    wait_until(lambda: not pid_alive(pid))
    assert zyg.pid is None
    run = job("def run(ctx):\n    return 1\n")
    assert run.finish() == 0
    assert zyg.pid not in (None, pid)


@pytest.mark.parametrize("how", ["exit", "SIGKILL"])
def test_the_zygote_ends_with_its_worker_process(tmp_path: Path, how: str) -> None:
    end = "os.kill(os.getpid(), signal.SIGKILL)" if how == "SIGKILL" else "sys.exit(0)"
    code = (
        "import os, signal, sys\n"
        "from opsconsole.engine.runners.zygote import shared\n"
        "print(shared().start(), flush=True)\n"
        f"{end}\n"
    )
    worker = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    pid = int(worker.stdout.split()[0])
    wait_until(lambda: not pid_alive(pid))
