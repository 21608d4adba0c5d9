"""Shell and Python runners end to end: markers, results, partial, dry run, timeouts, isolation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import bystander_source, wait_until, write_template

from opsconsole.config import Settings
from opsconsole.core.catalog import template_from_dict
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import FINAL, JobState
from opsconsole.core.views import JobView
from opsconsole.engine.context import RunContext, RunResult
from opsconsole.engine.procs import find_marked, pid_alive
from opsconsole.engine.runners.base import RunSpec
from opsconsole.engine.runners.python import PythonRunner, interrupt_thread

S = JobState


def final(service: OpsService, job_id: str, timeout: float = 10.0) -> JobView:
    return wait_until(lambda: (v := service.get(job_id)).state in FINAL and v, timeout)


def out_lines(service: OpsService, job_id: str) -> list[str]:
    return [ln.text for ln in service.logs_since(job_id) if ln.stream != "meta"]


def progress_events(service: OpsService, job_id: str) -> list[dict[str, Any]]:
    return [e.data or {} for e in service.events_since(0, job=job_id) if e.kind == "progress"]


def python_template(catalog: Path, name: str, ref: str, *, isolate: bool, extra: str = "") -> None:
    write_template(
        catalog,
        name,
        f"runner: python\nhandler: {ref}\nisolate: {str(isolate).lower()}\n{extra}",
    )


# -- markers and results ---------------------------------------------------------------------


def test_shell_markers_update_the_job_and_stay_out_of_the_log(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    write_template(
        catalog,
        "report",
        "command:\n  - bash\n  - -c\n  - |\n"
        "    echo before\n"
        "    echo ::progress 40 Querying data\n"
        f"    while [ ! -e {release} ]; do sleep 0.02; done\n"
        '    echo \'::result {"url": "x"}\'\n'
        "    echo ::step Uploading\n"
        "    echo '::unknown stays a log line'\n"
        "    echo after\n",
    )
    job = service.submit(SubmitRequest("report"))
    start_pool(1)
    wait_until(lambda: (v := service.get(job.id)).progress == 40 and v.step == "Querying data")
    release.touch()
    view = final(service, job.id)
    assert view.state == S.SUCCEEDED
    assert view.result == {"url": "x"}
    assert (view.progress, view.step) == (100, "Uploading")
    assert out_lines(service, job.id) == ["before", "::unknown stays a log line", "after"]
    assert progress_events(service, job.id) == []  # progress is on the row, not in the trail


@pytest.mark.parametrize("isolate", [False, True], ids=["in-thread", "isolated"])
def test_python_progress_log_and_result(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any, isolate: bool
) -> None:
    ref = handler(
        """
        import os

        def run(ctx):
            ctx.log("hello from " + ctx.template)
            ctx.log("two\\nlines", stream="err")
            ctx.log("::result not a marker")
            ctx.progress(40, "Querying")
            while not os.path.exists(ctx.params["release"]):
                if not ctx.sleep(0.02):
                    return None
            return {"url": "x", "n": [1, 2]}
        """
    )
    python_template(
        catalog,
        "py",
        ref,
        isolate=isolate,
        extra="params: {release: {type: string, required: true}}\n",
    )
    release = catalog / f"release-{isolate}"
    job = service.submit(SubmitRequest("py", {"release": str(release)}))
    start_pool(1)
    wait_until(lambda: (v := service.get(job.id)).progress == 40 and v.step == "Querying")
    release.touch()
    view = final(service, job.id)
    assert view.state == S.SUCCEEDED, view.error
    assert view.result == {"url": "x", "n": [1, 2]}
    lines = service.logs_since(job.id)
    # an isolated handler's stdout and stderr are two pipes: order holds within a stream
    assert [ln.text.strip() for ln in lines if ln.stream == "out"] == [
        "hello from py",
        "::result not a marker",
    ]
    assert [ln.text for ln in lines if ln.stream == "err"] == ["two", "lines"]


@pytest.mark.parametrize("isolate", [False, True], ids=["in-thread", "isolated"])
def test_python_partial_result(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any, isolate: bool
) -> None:
    ref = handler(
        """
        from opsconsole.engine.context import RunResult

        def run(ctx):
            return RunResult.partial({"ok": 3, "failed": ["db2"]}, message="one host failed")
        """
    )
    python_template(catalog, "py-partial", ref, isolate=isolate)
    job = service.submit(SubmitRequest("py-partial"))
    start_pool(1)
    view = final(service, job.id)
    assert view.state == S.PARTIAL
    assert view.result == {"ok": 3, "failed": ["db2"]}
    # the end says the handler's message, in its own process too (not "exit code 0")
    ended = [e for e in service.get(job.id, with_events=True).events if e.kind == "partial"]
    assert [e.message for e in ended] == ["one host failed"]


@pytest.mark.parametrize(("code", "state"), [(1, S.PARTIAL), (2, S.FAILED)])
def test_a_shell_message_marker_is_what_the_end_says(
    service: OpsService, catalog: Path, start_pool: Any, code: int, state: JobState
) -> None:
    write_template(
        catalog,
        "said",
        "partial_exit_codes: [1]\n"
        "params: {code: {type: integer, required: true}}\n"
        "command: [bash, -c, 'echo \"::message WARNING: /var is 85% used\"; exit $0',"
        " '{{ code }}']\n",
    )
    job = service.submit(SubmitRequest("said", {"code": code}))
    start_pool(1)
    view = final(service, job.id)
    assert view.state == state
    ended = [e for e in service.get(job.id, with_events=True).events if e.kind == state.value]
    assert [e.message for e in ended] == ["WARNING: /var is 85% used"]
    assert out_lines(service, job.id) == []  # a marker, not a log line


@pytest.mark.parametrize(("code", "state"), [(3, S.PARTIAL), (4, S.FAILED), (0, S.SUCCEEDED)])
def test_shell_partial_exit_codes(
    service: OpsService, catalog: Path, start_pool: Any, code: int, state: JobState
) -> None:
    write_template(
        catalog,
        "sync",
        "partial_exit_codes: [3]\n"
        "params: {code: {type: integer, required: true}}\n"
        "command: [bash, -c, 'echo \"::result {\\\"copied\\\": 9}\"; exit $0', '{{ code }}']\n",
    )
    job = service.submit(SubmitRequest("sync", {"code": code}))
    start_pool(1)
    view = final(service, job.id)
    assert view.state == state
    assert view.exit_code == code
    assert view.result == {"copied": 9}


@pytest.mark.parametrize("dry_run", [True, False])
def test_dry_run_reaches_a_shell_command(
    service: OpsService, catalog: Path, start_pool: Any, dry_run: bool
) -> None:
    write_template(
        catalog,
        "deploy",
        "command:\n"
        "  - bash\n"
        "  - -c\n"
        "  - 'echo \"dry=${OPSCONSOLE_DRY_RUN:-0} attempt=$OPSCONSOLE_ATTEMPT\"'\n",
    )
    job = service.submit(SubmitRequest("deploy", dry_run=dry_run))
    start_pool(1)
    assert final(service, job.id).state == S.SUCCEEDED
    assert out_lines(service, job.id) == [f"dry={int(dry_run)} attempt=1"]


@pytest.mark.parametrize("isolate", [False, True], ids=["in-thread", "isolated"])
def test_dry_run_reaches_a_python_handler(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any, isolate: bool
) -> None:
    ref = handler(
        """
        def run(ctx):
            return {"dry_run": ctx.dry_run, "job": ctx.job_id, "attempt": ctx.attempt}
        """
    )
    python_template(catalog, "py-dry", ref, isolate=isolate)
    dry = service.submit(SubmitRequest("py-dry", dry_run=True))
    wet = service.submit(SubmitRequest("py-dry"))
    start_pool(1)
    assert final(service, dry.id).result == {"dry_run": True, "job": dry.id, "attempt": 1}
    assert final(service, wet.id).result == {"dry_run": False, "job": wet.id, "attempt": 1}


@pytest.mark.parametrize("isolate", [False, True], ids=["in-thread", "isolated"])
def test_python_handler_errors_fail_the_job(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any, isolate: bool
) -> None:
    ref = handler(
        """
        def run(ctx):
            raise KeyError("no such host")
        """
    )
    python_template(catalog, "py-err", ref, isolate=isolate)
    python_template(catalog, "py-missing", ref.replace(":run", ":absent"), isolate=isolate)
    broken = service.submit(SubmitRequest("py-err"))
    missing = service.submit(SubmitRequest("py-missing"))
    start_pool(1)
    view = final(service, broken.id)
    assert view.state == S.FAILED
    assert view.error is not None and view.error["kind"] == "KeyError"
    assert "no such host" in view.error["message"]
    view = final(service, missing.id)
    assert view.state == S.FAILED
    assert view.error is not None and "absent" in view.error["message"]


def test_a_command_that_cannot_start_fails_the_job(
    service: OpsService, catalog: Path, start_pool: Any
) -> None:
    write_template(catalog, "typo", "command: [no-such-program-here, --flag]\n")
    job = service.submit(SubmitRequest("typo"))
    start_pool(1)
    view = final(service, job.id)
    assert view.state == S.FAILED
    assert view.error is not None and view.error["kind"] == "spawn"
    assert "no-such-program-here" in view.error["message"]


def test_secret_env_value_is_masked_in_the_log(
    service: OpsService, catalog: Path, start_pool: Any
) -> None:
    write_template(
        catalog,
        "api",
        "env: {TOKEN: '{{ token }}'}\n"
        "params: {token: {type: string, secret: true, required: true}}\n"
        'command: [bash, -c, \'echo "calling with $TOKEN"; echo "Bearer $TOKEN" >&2\']\n',
    )
    job = service.submit(SubmitRequest("api", {"token": "tok-123456"}))
    start_pool(1)
    assert final(service, job.id).state == S.SUCCEEDED
    lines = out_lines(service, job.id)
    assert sorted(lines) == ["Bearer ***", "calling with ***"]
    assert not any("tok-123456" in ln.text for ln in service.logs_since(job.id))


# -- python handler timeouts -----------------------------------------------------------------


def test_in_thread_handler_that_honours_cancel_times_out_promptly(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any
) -> None:
    ref = handler(
        """
        def run(ctx):
            ctx.log("waiting")
            ctx.sleep(30)
            return "woke"
        """
    )
    python_template(catalog, "py-slow", ref, isolate=False, extra="timeout: 0.5s\n")
    job = service.submit(SubmitRequest("py-slow"))
    start_pool(1)
    view = final(service, job.id, timeout=5)
    assert view.state == S.TIMED_OUT
    assert view.error is not None and view.error["message"] == "timed out after 0.5s"
    assert out_lines(service, job.id) == ["waiting"]


def test_in_thread_handler_that_ignores_cancel_is_abandoned_and_the_pool_goes_on(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    ref = handler(
        f"""
        import os, time

        def run(ctx):
            while not os.path.exists({str(release)!r}):  # never looks at ctx.cancelled
                time.sleep(0.01)
            return "finally"
        """
    )
    python_template(catalog, "py-stuck", ref, isolate=False, extra="timeout: 0.5s\n")
    write_template(catalog, "quick", "command: [echo, quick]\n")
    stuck = service.submit(SubmitRequest("py-stuck"))
    pool = start_pool(1)
    try:
        view = final(service, stuck.id, timeout=5)
        assert view.state == S.TIMED_OUT
        grace = service.settings.kill_grace
        assert view.duration_s is not None and view.duration_s >= 0.5 + grace - 0.05
        assert view.error is not None and "abandoned" in view.error["message"]
        # the runaway thread still runs, yet the one-slot pool serves the next job
        quick = service.submit(SubmitRequest("quick"))
        assert final(service, quick.id, timeout=5).state == S.SUCCEEDED
        assert pool.slots == 1
        wait_until(lambda: pool.busy() == 0, 2)  # the abandoned run does not count as busy
    finally:
        release.touch()
    runaway = [t for t in threading.enumerate() if t.name == "slot-0"]
    wait_until(lambda: sum(t.is_alive() for t in runaway) <= 1, 5)  # the runaway's thread ends
    assert service.get(stuck.id).state == S.TIMED_OUT  # its late return changes nothing


def test_isolated_handler_that_ignores_sigterm_is_killed(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    ref = handler(
        f"""
        import os, signal, subprocess, time

        def run(ctx):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            child = subprocess.Popen(["sleep", "30"])  # a grandchild to clean up too
            with open({str(pids)!r}, "w") as f:
                f.write(f"{{os.getpid()}}\\n{{child.pid}}\\n")
            time.sleep(30)
        """
    )
    python_template(catalog, "py-deaf", ref, isolate=True, extra="timeout: 0.5s\n")
    job = service.submit(SubmitRequest("py-deaf"))
    start_pool(1)
    wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 2)
    view = final(service, job.id, timeout=5)
    assert view.state == S.TIMED_OUT
    for pid in map(int, pids.read_text().split()):
        assert not pid_alive(pid), pid
    assert find_marked(f"{job.id}.1") == []


def test_handler_runs_in_its_own_workdir_which_is_removed(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any
) -> None:
    ref = handler(
        """
        import os

        def run(ctx):
            (ctx.workdir / "scratch").write_text("x")
            return {"cwd": os.getcwd(), "workdir": str(ctx.workdir)}
        """
    )
    python_template(catalog, "py-wd", ref, isolate=True)
    job = service.submit(SubmitRequest("py-wd"))
    start_pool(1)
    view = final(service, job.id)
    assert view.state == S.SUCCEEDED
    assert view.result["cwd"] == view.result["workdir"]
    assert job.id in view.result["workdir"]
    assert not Path(view.result["workdir"]).exists()  # removed before the job is recorded


def test_cancel_of_an_in_thread_handler_that_ignores_it_is_recorded(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    ref = handler(
        f"""
        import os, time

        def run(ctx):
            ctx.progress(5, "looping")
            while not os.path.exists({str(release)!r}):  # never looks at ctx.cancelled
                time.sleep(0.01)
        """
    )
    python_template(catalog, "py-deaf-cancel", ref, isolate=False)
    write_template(catalog, "quick", "command: [echo, quick]\n")
    job = service.submit(SubmitRequest("py-deaf-cancel"))
    start_pool(1)
    try:
        wait_until(lambda: service.get(job.id).step == "looping")
        service.cancel(job.id, reason="stop it")
        view = final(service, job.id, timeout=service.settings.kill_grace + 3)
        assert view.state == S.CANCELLED
        assert view.error is not None and "abandoned" in view.error["message"]
        quick = service.submit(SubmitRequest("quick"))
        assert final(service, quick.id, timeout=5).state == S.SUCCEEDED
    finally:
        release.touch()


def test_shutdown_records_an_in_thread_handler_that_ignores_it(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    ref = handler(
        f"""
        import os, time

        def run(ctx):
            ctx.progress(5, "looping")
            while not os.path.exists({str(release)!r}):  # never looks at ctx.cancelled
                time.sleep(0.01)
        """
    )
    python_template(catalog, "py-deaf-stop", ref, isolate=False)
    job = service.submit(SubmitRequest("py-deaf-stop"))
    pool = start_pool(1)
    try:
        wait_until(lambda: service.get(job.id).step == "looping")
        started = time.monotonic()
        pool.stop(grace=0.5)
        assert time.monotonic() - started < service.settings.kill_grace + 2
        view = service.get(job.id)
        assert view.state == S.INTERRUPTED
        assert view.error is not None and "abandoned" in view.error["message"]
    finally:
        release.touch()


# -- isolation: one bad handler never takes the worker down ----------------------------------


class Worker:
    """A worker pool in a process of its own, so a handler that kills its process shows it."""

    def __init__(self, settings: Settings, tmp_path: Path, slots: int) -> None:
        code = (
            "from opsconsole.config import load_settings\n"
            "from opsconsole.runtime import open_service, start_pool\n"
            f"s = load_settings(home={str(settings.home)!r}, catalog={str(settings.catalog)!r},"
            f" db={settings.db!r}, lease=3, heartbeat_interval=0.2, kill_grace=0.5,"
            " poll_interval=0.05)\n"
            f"start_pool(open_service(s), slots={slots}).run_forever()\n"
        )
        self.stdout = tmp_path / "worker.out"
        self.stderr = tmp_path / "worker.err"
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code], stdout=out, stderr=err, cwd=tmp_path
            )

    def stop(self) -> None:
        """Drain and exit as on SIGTERM, so whatever it buffered reaches its stdout."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def worker_process(settings: Settings, tmp_path: Path) -> Iterator[Callable[[int], Worker]]:
    workers: list[Worker] = []

    def start(slots: int = 1) -> Worker:
        workers.append(Worker(settings, tmp_path, slots))
        return workers[-1]

    yield start
    for w in workers:
        if w.proc.poll() is None:
            w.proc.kill()
        w.proc.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("crash", "message"),
    [
        ("os._exit(1)", "handler process died: exit code 1"),
        ("ctypes.string_at(0)", "handler process died: killed by SIGSEGV"),
    ],
    ids=["os._exit", "segfault"],
)
def test_a_handler_that_kills_its_process_fails_alone_and_the_worker_lives_on(
    service: OpsService,
    catalog: Path,
    handler: Any,
    worker_process: Callable[[int], Worker],
    tmp_path: Path,
    crash: str,
    message: str,
) -> None:
    release = tmp_path / "release"
    bystander = handler(bystander_source(release))
    poison = handler(
        f"""
        import ctypes, os

        def run(ctx):
            {crash}
        """
    )
    # no isolate key: the default is what is on trial
    write_template(catalog, "bystander", f"runner: python\nhandler: {bystander}\n")
    write_template(catalog, "poison", f"runner: python\nhandler: {poison}\n")
    waiting = service.submit(SubmitRequest("bystander"))
    worker = worker_process(2)
    try:
        wait_until(lambda: service.get(waiting.id).step == "waiting", 30)
        bad = service.submit(SubmitRequest("poison"))
        view = final(service, bad.id, timeout=30)
        assert view.state == S.FAILED
        assert view.error is not None and view.error["message"] == message
        assert worker.proc.poll() is None
        assert service.get(waiting.id).state == S.RUNNING
    finally:
        release.touch()
    assert final(service, waiting.id, timeout=30).result == "bystander done"
    assert worker.proc.poll() is None


def test_a_handler_that_ignores_cancel_is_killed_and_burns_no_cpu_after(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any, tmp_path: Path
) -> None:
    release, pid_file = tmp_path / "release", tmp_path / "pid"
    ref = handler(
        f"""
        import os

        def run(ctx):
            with open({str(pid_file)!r}, "w") as f:
                f.write(str(os.getpid()))
            while not os.path.exists({str(release)!r}):  # busy, never looks at ctx.cancelled
                pass
        """
    )
    write_template(catalog, "py-spin", f"runner: python\nhandler: {ref}\ntimeout: 0.5s\n")
    job = service.submit(SubmitRequest("py-spin"))
    start_pool(1)
    try:
        view = final(service, job.id, timeout=10)
        assert view.state == S.TIMED_OUT
        assert view.error is not None and view.error["message"] == "timed out after 0.5s"
        pid = int(pid_file.read_text())
        assert pid != os.getpid()
        assert not pid_alive(pid)
    finally:
        release.touch()


SECRET = "tok-s3cr3t-value"


@pytest.mark.slow
@pytest.mark.parametrize("isolate", [None, False], ids=["default", "in-thread"])
def test_what_a_handler_prints_reaches_its_log_masked_never_the_worker_stdout(
    service: OpsService,
    catalog: Path,
    handler: Any,
    worker_process: Callable[[int], Worker],
    isolate: bool | None,
) -> None:
    ref = handler(
        """
        import sys, threading

        def run(ctx):
            token = ctx.params["token"]
            print("print says", token)
            sys.stdout.write(f"write says {token}\\n")
            print("stderr says", token, file=sys.stderr)
            helper = threading.Thread(target=print, args=("another thread says", token))
            helper.start()
            helper.join()
            sys.stdout.write("no newline " + token)
            return "done"
        """
    )
    write_template(
        catalog,
        "py-print",
        f"runner: python\nhandler: {ref}\n"
        + ("" if isolate is None else f"isolate: {str(isolate).lower()}\n")
        + "params: {token: {type: string, secret: true, required: true}}\n",
    )
    job = service.submit(SubmitRequest("py-print", {"token": SECRET}))
    worker = worker_process(1)
    view = final(service, job.id, timeout=30)
    assert (view.state, view.result) == (S.SUCCEEDED, "done")  # an open line ate no marker
    worker.stop()
    stdout, stderr = worker.stdout.read_text(), worker.stderr.read_text()
    assert SECRET not in stdout and SECRET not in stderr
    lines = service.logs_since(job.id)
    assert not any(SECRET in ln.text for ln in lines)
    out = [ln.text for ln in lines if ln.stream == "out"]
    assert {"print says ***", "write says ***", "no newline ***"} <= set(out)
    assert [ln.text for ln in lines if ln.stream == "err"] == ["stderr says ***"]
    if isolate is None:  # the whole process is the job's: its other threads too
        assert "another thread says ***" in out
    else:  # other threads print to the worker's stdout, with running handlers' secrets masked
        assert "another thread says ***" in stdout.splitlines()
        assert "another thread says ***" not in out


def test_an_in_thread_handler_prints_into_its_log_and_stdout_is_given_back(
    catalog: Path, handler: Any, tmp_path: Path
) -> None:
    ref = handler(
        """
        import sys

        def run(ctx):
            print("one", end="")
            print(" line")
            sys.stderr.write("partial")
            return "ok"
        """
    )
    lines: list[tuple[str, str]] = []
    ctx = RunContext(
        job_id="j",
        attempt=1,
        template="t",
        params={},
        dry_run=False,
        workdir=tmp_path,
        log_fn=lambda stream, text: lines.append((stream, text)),
        progress_fn=lambda _pct, _step: None,
    )
    before = (sys.stdout, sys.stderr)
    res = PythonRunner().run(in_thread_spec(catalog, ref), ctx)
    assert res.result == "ok"
    assert lines == [("out", "one line"), ("err", "partial")]
    assert (sys.stdout, sys.stderr) == before


def in_thread_spec(catalog: Path, ref: str) -> RunSpec:
    tpl = template_from_dict({"name": "t", "runner": "python", "handler": ref, "isolate": False})
    return RunSpec(
        template=tpl, timeout_s=None, kill_grace=0.5, line_max=1000, catalog_dir=catalog, env={}
    )


def test_interrupt_thread_stops_an_in_thread_handler_that_ignores_its_stop(
    catalog: Path, handler: Any, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    ref = handler(
        f"""
        import os

        def run(ctx):
            ctx.progress(1, "spinning")
            while not os.path.exists({str(release)!r}):  # pure Python, deaf to ctx.cancelled
                try:
                    pass
                except Exception:  # what it cannot catch: HandlerInterrupted is no Exception
                    pass
            return "released"
        """
    )
    steps: list[str | None] = []
    ctx = RunContext(
        job_id="j",
        attempt=1,
        template="t",
        params={},
        dry_run=False,
        workdir=tmp_path,
        log_fn=lambda _stream, _text: None,
        progress_fn=lambda _pct, step: steps.append(step),
    )
    results: list[RunResult] = []
    thread = threading.Thread(
        target=lambda: results.append(PythonRunner().run(in_thread_spec(catalog, ref), ctx)),
        daemon=True,
    )
    thread.start()
    try:
        wait_until(lambda: steps == ["spinning"])
        ctx.stop.set("cancelled", "stop it")
        assert thread.is_alive()  # it ignores the stop
        assert interrupt_thread(thread) is True
        thread.join(10)
        assert not thread.is_alive()
    finally:
        release.touch()
    [res] = results
    assert res.outcome == "cancelled"
    assert res.error is not None
    assert res.error["message"] == "stop it; the handler ignored it and was interrupted"
    assert interrupt_thread(thread) is False  # a thread that ended is left alone


@pytest.mark.parametrize("isolate", [False, True], ids=["in-thread", "isolated"])
def test_a_handler_calling_sys_exit_fails_its_job_and_the_slot_goes_on(
    service: OpsService, catalog: Path, start_pool: Any, handler: Any, isolate: bool
) -> None:
    ref = handler(
        """
        import sys

        def run(ctx):
            sys.exit(3)
        """
    )
    python_template(catalog, "py-exit", ref, isolate=isolate)
    write_template(catalog, "quick", "command: [echo, quick]\n")
    job = service.submit(SubmitRequest("py-exit"))
    pool = start_pool(1)
    view = final(service, job.id)
    assert view.state == S.FAILED
    assert view.error is not None
    assert view.error["message"] == "handler called sys.exit(3) instead of returning"
    quick = service.submit(SubmitRequest("quick"))
    assert final(service, quick.id).state == S.SUCCEEDED
    assert pool.slots == 1
