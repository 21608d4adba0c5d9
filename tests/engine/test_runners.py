"""Shell and Python runners end to end: markers, results, partial, dry run, handler timeouts."""

from __future__ import annotations

import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import wait_until, write_template

from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import FINAL, JobState
from opsconsole.core.views import JobView
from opsconsole.engine.procs import find_marked, pid_alive

S = JobState


def final(service: OpsService, job_id: str, timeout: float = 10.0) -> JobView:
    return wait_until(lambda: (v := service.get(job_id)).state in FINAL and v, timeout)


def out_lines(service: OpsService, job_id: str) -> list[str]:
    return [ln.text for ln in service.logs_since(job_id) if ln.stream != "meta"]


def progress_events(service: OpsService, job_id: str) -> list[dict[str, Any]]:
    return [e.data or {} for e in service.events_since(0, job=job_id) if e.kind == "progress"]


@pytest.fixture
def handler(catalog: Path) -> Any:
    """Write a handler module into the catalog dir; returns ``module:function``."""

    def write(source: str, func: str = "run") -> str:
        name = f"handlers_{uuid.uuid4().hex[:10]}"
        (catalog / f"{name}.py").write_text(textwrap.dedent(source))
        return f"{name}:{func}"

    return write


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
