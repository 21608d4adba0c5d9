"""Benchmark of a Python handler's isolation (not a test): what one no-op job costs per mode.

    .venv/bin/python bench/handler_bench.py            (about a minute; --help for the knobs)

The handler is ``def run(ctx): return None``; each mode runs it ``--jobs`` times in a row
after a warm-up and measures, per job, the wall time from "start it" to "its end is known"
and the CPU time it cost every process involved:

- ``in-thread``: ``PythonRunner`` with ``isolate: false``, on this thread (this process's CPU);
- ``zygote``: a process forked from the handler host (``runners/zygote.py``), fed the job
  on stdin, its stdout read to EOF and its exit status received (our CPU + the child's, from
  its rusage + the zygote's, from /proc);
- ``fresh``: ``python -m opsconsole.engine.runners.child`` started with ``subprocess.Popen``
  and the same pipes (our CPU + RUSAGE_CHILDREN), which is what ``isolate: true`` cost before
  the zygote;
- ``fresh+supervisor``: the same through ``procs.Supervisor`` (its job cgroup or marker
  sweep, reader threads, its wait loop), i.e. the runner's whole isolated path without the
  zygote;
- ``zygote+supervisor``: the runner's whole isolated path with it (once ``Supervisor`` takes
  a launcher).

Results go to ``bench/results/handlers.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "handlers.json"
HANDLER = "def run(ctx):\n    return None\n"
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc (to the clock tick)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def payload(catalog: Path, n: int) -> bytes:
    job = {
        "handler": "bench_noop:run",
        "catalog_dir": str(catalog),
        "params": {},
        "job_id": f"bench{n}",
        "attempt": 1,
        "template": "noop",
        "dry_run": False,
    }
    return json.dumps(job).encode()


def drain(fd: int, into: list[bytes]) -> None:
    try:
        while chunk := os.read(fd, 65536):
            into.append(chunk)
    finally:
        os.close(fd)


def run_piped(launch: Callable[[int, int, int], Any], data: bytes) -> Any:
    """Start one job with our pipes, feed it, read it to EOF, wait for it; the handle."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        handle = launch(in_r, out_w, err_w)
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    os.write(in_w, data)
    os.close(in_w)
    err: list[bytes] = []
    reader = threading.Thread(target=drain, args=(err_r, err))
    reader.start()
    out: list[bytes] = []
    drain(out_r, out)
    reader.join()
    rc = handle.wait()
    if rc != 0 or b"::outcome succeeded" not in b"".join(out):
        raise SystemExit(f"a bench job failed (rc {rc}): {b''.join(out + err).decode()}")
    return handle


class Mode:
    name = ""

    def __init__(self, catalog: Path, workdir: Path) -> None:
        self.catalog = catalog
        self.workdir = workdir
        self.extra_cpu = 0.0
        """CPU spent by processes other than ours and our children, summed over the jobs."""

    def setup(self) -> None:
        pass

    def one(self, n: int) -> None:
        raise NotImplementedError

    def children_cpu(self) -> float:
        return children_cpu()

    def teardown(self) -> None:
        pass


class InThread(Mode):
    name = "in-thread"

    def setup(self) -> None:
        from opsconsole.core.catalog import template_from_dict
        from opsconsole.engine.runners.base import RunSpec
        from opsconsole.engine.runners.python import PythonRunner

        tpl = template_from_dict(
            {"name": "noop", "runner": "python", "handler": "bench_noop:run", "isolate": False}
        )
        self.spec = RunSpec(
            template=tpl,
            timeout_s=None,
            kill_grace=1.0,
            line_max=1000,
            catalog_dir=self.catalog,
            env={},
        )
        self.runner = PythonRunner()

    def one(self, n: int) -> None:
        from opsconsole.engine.context import RunContext

        ctx = RunContext(
            job_id=f"bench{n}",
            attempt=1,
            template="noop",
            params={},
            dry_run=False,
            workdir=self.workdir,
            log_fn=lambda _s, _t: None,
            progress_fn=lambda _p, _s: None,
        )
        res = self.runner.run(self.spec, ctx)
        if res.outcome != "succeeded":
            raise SystemExit(f"a bench job failed: {res}")


class Forked(Mode):
    name = "zygote"

    def setup(self) -> None:
        from opsconsole.engine.procs import ProcSpec
        from opsconsole.engine.runners.shell import python_argv
        from opsconsole.engine.runners.zygote import Zygote

        self.zygote = Zygote()
        self.host = self.zygote.start()
        self.host_cpu = proc_cpu(self.host)
        self.child_cpu = 0.0
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}
        self.make_spec = lambda n: ProcSpec(
            argv=python_argv(), env=self.env, cwd=str(self.workdir), marker=f"bench{n}"
        )

    def one(self, n: int) -> None:
        spec = self.make_spec(n)
        handle = run_piped(
            lambda i, o, e: self.zygote(spec, stdin=i, stdout=o, stderr=e, cgroup_procs=None),
            payload(self.catalog, n),
        )
        self.child_cpu += handle.cpu_s or 0.0

    def children_cpu(self) -> float:
        return self.child_cpu

    def teardown(self) -> None:
        if self.zygote.pid != self.host:
            raise SystemExit("the zygote was replaced during the bench")
        self.extra_cpu = proc_cpu(self.host) - self.host_cpu
        self.zygote.shutdown()


class Fresh(Mode):
    name = "fresh"

    def setup(self) -> None:
        from opsconsole.engine.runners.shell import python_argv

        self.argv = python_argv()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}

    def one(self, n: int) -> None:
        run_piped(
            lambda i, o, e: subprocess.Popen(
                self.argv,
                stdin=i,
                stdout=o,
                stderr=e,
                env=self.env,
                cwd=self.workdir,
                start_new_session=True,
                close_fds=True,
            ),
            payload(self.catalog, n),
        )


class FreshSupervised(Mode):
    name = "fresh+supervisor"

    def setup(self) -> None:
        from opsconsole.engine.procs import ProcSpec, Supervisor
        from opsconsole.engine.runners.shell import python_argv

        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}
        self.supervised = lambda n: Supervisor(
            ProcSpec(
                argv=python_argv(),
                env=env,
                cwd=str(self.workdir),
                marker=f"bench{n}",
                stdin_data=payload(self.catalog, n),
            ),
            lambda _stream, _text: None,
        )

    def one(self, n: int) -> None:
        sup = self.supervised(n)
        sup.start()
        out = sup.wait()
        if out.exit_code != 0:
            raise SystemExit(f"a bench job failed: {out}")


class ForkedSupervised(FreshSupervised):
    name = "zygote+supervisor"

    def setup(self) -> None:
        from opsconsole.engine.procs import ProcSpec, Supervisor
        from opsconsole.engine.runners.shell import python_argv
        from opsconsole.engine.runners.zygote import Zygote

        self.zygote = Zygote()
        self.host = self.zygote.start()
        self.host_cpu = proc_cpu(self.host)
        self.child_cpu = 0.0
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}

        def launch(spec: Any, **fds: Any) -> Any:
            handle = self.zygote(spec, **fds)
            self.handles.append(handle)
            return handle

        self.handles: list[Any] = []
        self.supervised = lambda n: Supervisor(  # type: ignore[call-arg]
            ProcSpec(
                argv=python_argv(),
                env=env,
                cwd=str(self.workdir),
                marker=f"bench{n}",
                stdin_data=payload(self.catalog, n),
            ),
            lambda _stream, _text: None,
            launcher=launch,
        )

    def children_cpu(self) -> float:
        return sum(h.cpu_s or 0.0 for h in self.handles)

    def teardown(self) -> None:
        Forked.teardown(self)  # type: ignore[arg-type]


def supervisor_takes_a_launcher() -> bool:
    from opsconsole.engine.procs import Supervisor

    return "launcher" in inspect.signature(Supervisor).parameters


def measure(mode: Mode, jobs: int, warmup: int) -> dict[str, Any]:
    mode.setup()
    for n in range(warmup):
        mode.one(-1 - n)
    walls: list[float] = []
    cpu0, kids0 = time.process_time(), mode.children_cpu()
    started = time.perf_counter()
    for n in range(jobs):
        t = time.perf_counter()
        mode.one(n)
        walls.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    ours = time.process_time() - cpu0
    kids = mode.children_cpu() - kids0
    mode.teardown()
    cpu = ours + kids + mode.extra_cpu
    walls.sort()
    return {
        "jobs": jobs,
        "wall_ms": {
            "mean": round(1000 * statistics.fmean(walls), 3),
            "median": round(1000 * statistics.median(walls), 3),
            "p95": round(1000 * walls[int(0.95 * (len(walls) - 1))], 3),
        },
        "cpu_ms_per_job": {
            "total": round(1000 * cpu / jobs, 3),
            "worker": round(1000 * ours / jobs, 3),
            "handler_process": round(1000 * kids / jobs, 3),
            "zygote": round(1000 * mode.extra_cpu / jobs, 3),
        },
        "jobs_per_s": round(jobs / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs per mode (default 200)")
    parser.add_argument(
        "--fresh-jobs", type=int, default=50, help="jobs for the two fresh modes (default 50)"
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-save", action="store_true", help="do not write the results file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="opsconsole-bench-") as tmp:
        # Handler processes load cached bytecode, as from an installed wheel: without it (an
        # editable install under PYTHONDONTWRITEBYTECODE) a fresh interpreter compiles
        # opsconsole from source each time and the comparison would mostly measure that.
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        catalog, workdir = Path(tmp) / "catalog", Path(tmp) / "work"
        catalog.mkdir()
        workdir.mkdir()
        (catalog / "bench_noop.py").write_text(HANDLER)
        results: dict[str, Any] = {}
        for cls, jobs in (
            (InThread, args.jobs),
            (Forked, args.jobs),
            (Fresh, args.fresh_jobs),
            (FreshSupervised, args.fresh_jobs),
            *([(ForkedSupervised, args.jobs)] if supervisor_takes_a_launcher() else []),
        ):
            mode = cls(catalog, workdir)
            results[mode.name] = measure(mode, jobs, args.warmup)
            print(f"{mode.name}: done", file=sys.stderr)

    print(f"{'mode':<18}{'wall median':>12}{'wall p95':>10}{'CPU/job':>10}{'jobs/s':>9}")
    for name, r in results.items():
        print(
            f"{name:<18}{r['wall_ms']['median']:>10.2f}ms{r['wall_ms']['p95']:>8.2f}ms"
            f"{r['cpu_ms_per_job']['total']:>8.2f}ms{r['jobs_per_s']:>9.1f}"
        )
    if args.no_save:
        return
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_1m": round(os.getloadavg()[0], 2),
        },
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "handler": HANDLER,
        "modes": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {RESULTS.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
