"""The built-in check handlers, each run as a real job by a real pool against real local
endpoints: an HTTP server in a thread, an open and a closed TCP port, the temp dir's
filesystem, a process we start, and Nagios plugin scripts with each exit code."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import wait_until, write_template

from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import FINAL
from opsconsole.core.views import JobView
from opsconsole.engine.pool import WorkerPool

pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
SAMPLES = Path(__file__).resolve().parents[2] / "data"
CHECK_TEMPLATES = ("http-check", "tcp-check", "disk-check", "process-check", "command-check",
                   "usage-limits", "load-check")  # fmt: skip
SLOW_S = 0.5
"""How long /slow takes at least: above the thresholds the test sets, whatever the load."""


class Endpoints(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(SLOW_S)
        code = 500 if self.path == "/wrong" else 200
        body = b"maintenance page" if self.path == "/other" else b"all systems go"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet: the test reads the checks' results, not the server's log."""


@pytest.fixture
def web() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoints)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def samples(catalog: Path) -> Path:
    """The sample check templates (and the shell plugin they run) in the test's catalog."""
    for name in CHECK_TEMPLATES:
        shutil.copy(SAMPLES / "templates" / f"{name}.yaml", catalog / "templates")
    (catalog / "scripts").mkdir(exist_ok=True)
    shutil.copy(SAMPLES / "scripts" / "check-load.sh", catalog / "scripts")
    return catalog


@pytest.fixture
def run_check(
    service: OpsService, samples: Path, start_pool: Callable[..., WorkerPool]
) -> Callable[..., tuple[JobView, dict[str, Any]]]:
    """Submit a check, run it on a pool, return its job and its result."""
    start_pool(slots=1)

    def run(template: str, **params: Any) -> tuple[JobView, dict[str, Any]]:
        # no retries: a failed check would re-check after its backoff (a soft state)
        job = service.submit(SubmitRequest(template, params, retries=0))
        view = wait_until(lambda: (v := service.get(job.id)).state in FINAL and v, 30)
        assert isinstance(view.result, dict), (view.state, view.error)
        return view, view.result

    return run


def status_of(run_check: Callable[..., tuple[JobView, dict[str, Any]]], *a: Any, **kw: Any) -> str:
    return str(run_check(*a, **kw)[1]["status"])


@pytest.mark.parametrize(
    ("path", "params", "status", "state", "summary"),
    [
        ("/", {"contains": "systems go"}, "ok", "succeeded", "-> 200 in"),
        ("/slow", {"warn_ms": 100}, "warning", "partial", "(threshold 100 ms)"),
        ("/slow", {"warn_ms": 50, "crit_ms": 200}, "critical", "failed", "(threshold 200 ms)"),
        ("/wrong", {}, "critical", "failed", "returned 500, expected 200"),
        ("/other", {"contains": "systems go"}, "critical", "failed", "does not contain"),
    ],
)
def test_http_check(
    run_check: Callable[..., tuple[JobView, dict[str, Any]]],
    service: OpsService,
    web: str,
    path: str,
    params: dict[str, Any],
    status: str,
    state: str,
    summary: str,
) -> None:
    job, result = run_check("http-check", url=web + path, timeout=5, **params)
    assert (result["status"], job.state) == (status, state)
    assert summary in result["summary"]
    if path == "/slow":
        assert result["latency_ms"] >= SLOW_S * 1000
    view = service.check("http-check").view
    assert (view.status, view.output, view.last_job) == (status, result["summary"], job.id)
    assert view.latency_ms == result["latency_ms"]


def test_http_check_of_nothing_listening_is_critical(
    run_check: Callable[..., tuple[JobView, dict[str, Any]]], closed_port: int
) -> None:
    _, result = run_check("http-check", url=f"http://127.0.0.1:{closed_port}/", timeout=5)
    assert result["status"] == "critical"
    assert "ConnectError" in result["summary"]


def test_http_check_never_shows_the_credentials_in_a_url(
    run_check: Callable[..., tuple[JobView, dict[str, Any]]],
    service: OpsService,
    web: str,
    closed_port: int,
) -> None:
    url = web.replace("http://", "http://ops:s3cr3t@") + "/wrong"
    _, result = run_check("http-check", url=url)
    assert (
        result["summary"]
        == f"GET {web.replace('http://', 'http://***@')}/wrong returned 500, expected 200"
    )
    down = f"http://ops:s3cr3t@127.0.0.1:{closed_port}/"
    _, result = run_check("http-check", url=down)
    assert result["summary"].startswith(f"GET http://***@127.0.0.1:{closed_port}/ failed: ")
    changed = [e for e in service.events_since(0, limit=1000) if e.kind == "check.changed"]
    assert changed and all("s3cr3t" not in str(e.data) + e.message for e in changed)
    assert "s3cr3t" not in str(service.check("http-check").to_dict())


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: bound, then closed (connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def open_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(5)
        yield int(s.getsockname()[1])


def test_tcp_check_of_an_open_and_a_closed_port(
    run_check: Callable[..., tuple[JobView, dict[str, Any]]], open_port: int, closed_port: int
) -> None:
    job, result = run_check("tcp-check", host="127.0.0.1", port=open_port)
    assert (result["status"], job.state) == ("ok", "succeeded")
    assert result["summary"].startswith(f"127.0.0.1:{open_port} accepts connections")
    job, result = run_check("tcp-check", host="127.0.0.1", port=closed_port)
    assert (result["status"], job.state) == ("critical", "failed")
    assert result["summary"] == f"127.0.0.1:{closed_port}: Connection refused"


def used_pct(path: Path) -> float:
    usage = shutil.disk_usage(path)
    return usage.used / (usage.used + usage.free) * 100


def test_disk_check_thresholds_against_the_real_usage(
    run_check: Callable[..., tuple[JobView, dict[str, Any]]], tmp_path: Path
) -> None:
    pct = used_pct(tmp_path)
    assert 2 < pct < 98, f"the temp filesystem is {pct:.1f}% used: thresholds cannot bracket it"
    below, above = pct / 2, (pct + 100) / 2
    where = str(tmp_path)
    assert status_of(run_check, "disk-check", path=where, warn=above, crit=above) == "ok"
    assert status_of(run_check, "disk-check", path=where, warn=below, crit=above) == "warning"
    job, result = run_check("disk-check", path=where, warn=below, crit=below)
    assert (result["status"], job.state) == ("critical", "failed")
    assert result["summary"].startswith(f"{where} is ")
    assert abs(result["used_pct"] - pct) < 1
    assert status_of(run_check, "disk-check", path=where + "/gone") == "unknown"


def test_process_check_finds_a_real_process_and_misses_it_once_it_ended(
    run_check: Callable[..., tuple[JobView, dict[str, Any]]],
) -> None:
    marker = f"opsconsole-check-probe-{time.monotonic_ns()}"
    code = f"import time  # {marker}\ntime.sleep(300)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        job, result = run_check("process-check", pattern=marker)
        assert (result["status"], job.state) == ("ok", "succeeded")
        assert result["pids"] == [proc.pid]
        assert result["summary"] == f"1 process(es) with pattern {marker} (at least 1 expected)"
        assert status_of(run_check, "process-check", pattern=marker, min=2) == "critical"
    finally:
        proc.kill()
        proc.wait(10)
    assert status_of(run_check, "process-check", pattern=marker) == "critical"


def test_process_check_with_a_bad_pattern_is_unknown(
    run_check: Callable[..., tuple[JobView, dict[str, Any]]],
) -> None:
    _, result = run_check("process-check", pattern="(unclosed")
    assert result["status"] == "unknown"
    assert result["summary"].startswith("pattern is not a valid regular expression: ")


@pytest.fixture
def plugin(tmp_path: Path) -> str:
    """A Nagios plugin: exits with its first argument, says so on its first line."""
    script = tmp_path / "check_probe"
    script.write_text(
        "#!/bin/sh\n"
        'echo "PROBE $1 - said with exit code $1 | value=$1;1;2"\n'
        'echo "second line: detail"\n'
        'exit "$1"\n'
    )
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(
    ("code", "status", "state"),
    [(0, "ok", "succeeded"), (1, "warning", "partial"), (2, "critical", "failed"),
     (3, "unknown", "failed")],
)  # fmt: skip
def test_command_check_follows_the_plugin_convention(
    run_check: Callable[..., tuple[JobView, dict[str, Any]]],
    service: OpsService,
    plugin: str,
    code: int,
    status: str,
    state: str,
) -> None:
    job, result = run_check("command-check", argv=json.dumps([plugin, str(code)]))
    assert (result["status"], job.state, result["exit"]) == (status, state, code)
    assert result["summary"] == f"PROBE {code} - said with exit code {code}"
    assert result["perfdata"] == f"value={code};1;2"
    assert service.check("command-check").view.status == status


def test_real_runs_write_one_check_changed_per_change(
    run_check: Callable[..., tuple[JobView, dict[str, Any]]], service: OpsService, plugin: str
) -> None:
    jobs = [run_check("command-check", argv=json.dumps([plugin, str(c)]))[0] for c in (0, 0, 2, 2)]
    changed = [e for e in service.events_since(0, limit=1000) if e.kind == "check.changed"]
    assert [(e.job_id, e.data) for e in changed] == [
        (
            jobs[2].id,
            {
                "check": "command-check",
                "from": "ok",
                "to": "critical",
                "output": "PROBE 2 - said with exit code 2",
            },
        )
    ]
    assert [r.job_id for r in service.check("command-check").results] == [
        j.id for j in reversed(jobs)
    ]


@pytest.mark.parametrize(
    ("code", "status", "state"),
    [(0, "ok", "succeeded"), (1, "warning", "partial"), (2, "critical", "failed"),
     (3, "unknown", "failed")],
)  # fmt: skip
def test_a_shell_template_check_is_a_plugin_too(
    service: OpsService,
    samples: Path,
    start_pool: Callable[..., WorkerPool],
    plugin: str,
    code: int,
    status: str,
    state: str,
) -> None:
    shutil.copy(plugin, samples / "scripts" / "check_probe")  # a program inside the catalog
    write_template(
        samples,
        "probe",
        "runner: shell\ncheck: true\ncommand: [scripts/check_probe, '{{ code }}']\n"
        "params:\n  code: {type: integer}\n",
    )
    start_pool(slots=1)
    job = service.submit(SubmitRequest("probe", {"code": code}))
    view = wait_until(lambda: (v := service.get(job.id)).state in FINAL and v, 30)
    assert (view.state, view.exit_code) == (state, code)
    check = service.check("probe").view
    assert (check.status, check.output) == (status, f"PROBE {code} - said with exit code {code}")


def test_the_sample_load_plugin_runs_as_a_shell_check(
    run_check: Callable[..., tuple[JobView, dict[str, Any]]], service: OpsService
) -> None:
    job = service.submit(SubmitRequest("load-check", {"warn": 10_000, "crit": 20_000}))
    view = wait_until(lambda: (v := service.get(job.id)).state in FINAL and v, 30)
    assert view.state == "succeeded"
    check = service.check("load-check").view
    assert check.status == "ok"
    assert check.output.startswith("OK - load ")


def usage(tmp_path: Path, *items: tuple[str, float, float]) -> str:
    path = tmp_path / "usage.json"
    rows = [{"name": n, "usage": u, "limit": lim} for n, u, lim in items]
    path.write_text(json.dumps({"items": rows}))
    return str(path)


def test_usage_limits_warn_at_80_and_90_percent(
    run_check: Callable[..., tuple[JobView, dict[str, Any]]], tmp_path: Path
) -> None:
    calm = usage(tmp_path, ("alice", 10, 100), ("bob", 79, 100))
    job, result = run_check("usage-limits", usage_file=calm)
    assert (result["status"], job.state) == ("ok", "succeeded")
    assert result["summary"] == "2 item(s) checked, all under 80%"
    busy = usage(tmp_path, ("alice", 85, 100), ("bob", 95, 100))
    job, result = run_check("usage-limits", usage_file=busy)
    assert (result["status"], job.state) == ("warning", "partial")
    assert result["summary"] == "2 item(s) checked: alice 85% (at 80%), bob 95% (at 90%)"


def test_usage_limits_enforce_only_when_asked_and_only_over_the_limit(
    run_check: Callable[..., tuple[JobView, dict[str, Any]]], tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    over = usage(tmp_path, ("alice", 120, 100), ("bob", 50, 100), ("../carol", 100, 100))
    job, result = run_check("usage-limits", usage_file=over, marker_dir=str(markers))
    assert (result["status"], job.state) == ("critical", "failed")
    assert result["summary"].endswith("(dry run: nothing enforced)")
    assert list(markers.iterdir()) == []  # enforce: false is the dry run
    job, result = run_check("usage-limits", usage_file=over, marker_dir=str(markers), enforce=True)
    assert result["enforced"] == ["alice", "../carol"]
    assert sorted(p.name for p in markers.iterdir()) == ["_carol.over-limit", "alice.over-limit"]
    body = json.loads((markers / "alice.over-limit").read_text())
    assert body == {"item": "alice", "usage": 120, "limit": 100, "job": job.id}
    assert not (tmp_path / "carol.over-limit").exists()  # a name never leaves the marker dir
