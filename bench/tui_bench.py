"""Benchmark of the console under load (not a test): how fast it paints, answers keys, and
what it costs while 20 chatty jobs run, on a store with 100,000 finished jobs.

    .venv/bin/python bench/tui_bench.py            (a few minutes; --help for the knobs)

1. A temporary SQLite store gets ``--jobs`` finished jobs (bulk inserts through the store's
   tables, two audit events each) and one job with a ``--log-lines`` log (written with the
   store's own ``append_logs``, in batches).
2. A worker pool runs in a separate process (``opsconsole worker --workers 20``) and runs
   ``--chatty`` jobs that print about 100 lines a second (and a progress marker a second).
3. The console runs in another separate process (so its CPU and memory are its own), in
   Textual's headless mode at 160x50, and measures:

   - first paint: from opening the store until the first frame that shows the loaded data;
   - key-to-update: from a key event (``]`` next pane, ``down`` in History) until the first
     frame rendered with its effect;
   - CPU and RSS of the console process over ``--live-seconds`` of live updates while it
     follows one chatty job's log;
   - opening the big log (until its last line is on screen) and PageUp through it (each
     PageUp until the screen moved; a PageUp at the top of the loaded window waits for
     older lines from the store).

A "frame" is a compositor update handed to the driver: the headless driver drops it
instead of writing it to a terminal, so terminal emulator time is not included.
Results go to ``bench/results/tui.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import random
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "tui.json"
BIN = Path(sys.executable).parent / "opsconsole"
MARK = "BENCH-RESULT "
TARGETS = {"first_paint_s": 1.0, "key_to_update_ms": 100.0, "rss_mb": 200.0}
SIZE = (160, 50)

CHATTY_CODE = """\
import sys, time
n = int(sys.argv[1])
for i in range(1, n + 1):
    print(f"line {i} of {n}: the quick brown fox jumps over the lazy dog", flush=True)
    if i % 100 == 0:
        print(f"::progress {100 * i // n} chunk {i // 100}", flush=True)
    time.sleep(0.01)
"""

# -- phase 1: the store ---------------------------------------------------------------------


def write_catalog(catalog: Path) -> None:
    import yaml

    (catalog / "templates").mkdir(parents=True, exist_ok=True)
    chatty = {
        "name": "chatty",
        "description": "Print about 100 lines a second, a progress marker a second",
        "runner": "shell",
        "command": [sys.executable, "-u", "-c", CHATTY_CODE, "{{ lines }}"],
        "params": {"lines": {"type": "integer", "default": 2000, "min": 1, "max": 1_000_000}},
        "timeout": "10m",
    }
    (catalog / "templates" / "chatty.yaml").write_text(yaml.safe_dump(chatty, sort_keys=False))


def unique_ids(rng: random.Random, n: int) -> list[str]:
    from opsconsole.core.ids import ALPHABET, LENGTH

    seen: set[str] = set()
    while len(seen) < n:
        seen.add("".join(rng.choice(ALPHABET) for _ in range(LENGTH)))
    return sorted(seen, key=lambda _: rng.random())


HISTORY_TEMPLATES = [
    ("hello", lambda r: {"name": r.choice(["ops", "team", "world"])}),
    ("disk-report", lambda r: {"path": r.choice(["/var", "/srv", "/tmp"]), "top": 5}),
    ("deploy-app", lambda r: {"app": "shop", "version": f"1.{r.randint(0, 9)}.{r.randint(0, 20)}"}),
    ("sync-inventory", lambda r: {"hosts": [f"web{i}" for i in range(1, r.randint(2, 9))]}),
    ("http-check", lambda r: {"url": "https://shop.example.com/health", "expect": 200}),
    ("rotate-logs", lambda r: {"files": ["/var/log/app.log"]}),
]
OUTCOMES = [("succeeded", 85), ("failed", 8), ("partial", 4), ("cancelled", 2), ("timed_out", 1)]


def job_row(
    job_id: str,
    template: str,
    state: str,
    params: dict[str, Any],
    created: datetime,
    started: datetime,
    finished: datetime | None,
) -> dict[str, Any]:
    """Every column of a job row, as the store writes them."""
    failed = state in ("failed", "timed_out")
    return {
        "id": job_id,
        "template": template,
        "state": state,
        "priority": 5,
        "params": params,
        "secret_blob": None,
        "spec": {},
        "run_at": created,
        "depends_on": [],
        "tags": ",bench,",
        "attempts": 1,
        "retry_base": 0,
        "max_retries": 0,
        "backoff_s": 5.0,
        "timeout_s": 600.0,
        "concurrency_key": None,
        "concurrency_limit": 1,
        "on_interrupt": "mark",
        "dry_run": False,
        "submitted_by": "ops",
        "created_at": created,
        "updated_at": finished or started,
        "started_at": started,
        "finished_at": finished,
        "exit_code": 1 if failed else 0 if finished else None,
        "progress": 100 if state == "succeeded" else None,
        "step": None,
        "result": None if failed else {"ok": True},
        "error": {"message": "exit code 1", "kind": "exit", "detail": None} if failed else None,
        "worker": "bench:1:0000",
        "lease_until": None,
        "cancel_requested": False,
        "cancel_reason": None,
        "pid": None,
        "log_lines": 0,
        "log_dropped": 0,
    }


def seed_history(service: Any, n: int, rng: random.Random) -> list[str]:
    """``n`` finished jobs over the last 30 days, each with its submitted and final event."""
    from opsconsole.core.store.db import events, jobs

    now = datetime.now(UTC) - timedelta(minutes=5)
    states = [s for s, w in OUTCOMES for _ in range(w)]
    ids = unique_ids(rng, n + 1)
    chunk = 5000
    for start in range(0, n, chunk):
        job_rows, event_rows = [], []
        for job_id in ids[start : start + chunk]:
            template, params = rng.choice(HISTORY_TEMPLATES)
            state = rng.choice(states)
            created = now - timedelta(seconds=rng.uniform(60, 30 * 86400))
            started = created + timedelta(seconds=rng.uniform(0, 5))
            finished = started + timedelta(seconds=rng.expovariate(1 / 40))
            row = job_row(job_id, template, state, params(rng), created, started, finished)
            job_rows.append(row)
            event_rows.append(
                {
                    "job_id": job_id,
                    "ts": created,
                    "kind": "submitted",
                    "actor": "ops",
                    "state": "queued",
                    "attempt": None,
                    "message": "",
                    "data": None,
                }
            )
            event_rows.append(
                {
                    "job_id": job_id,
                    "ts": finished,
                    "kind": state,
                    "actor": "bench:1:0000",
                    "state": state,
                    "attempt": 1,
                    "message": "",
                    "data": None,
                }
            )
        with service.db.write() as conn:
            conn.execute(jobs.insert(), job_rows)
            conn.execute(events.insert(), event_rows)
    return ids[n:]


def seed_big_log(service: Any, job_id: str, lines: int) -> None:
    """One job with a ``lines``-line log, written while it runs, then finished."""
    from opsconsole.core.states import JobState
    from opsconsole.core.store import feed
    from opsconsole.core.store import jobs as job_store
    from opsconsole.core.store.db import jobs

    start = datetime.now(UTC) - timedelta(minutes=4)
    row = job_row(job_id, "chatty", "running", {"lines": lines}, start, start, None)
    with service.db.write() as conn:
        conn.execute(jobs.insert(), [{**row, "attempts": 1, "progress": None, "result": None}])
    batch = 5000
    for first in range(1, lines + 1, batch):
        rows = [
            (
                start + timedelta(milliseconds=i),
                "err" if i % 1000 == 0 else "out",
                f"{i:07d} build step {i % 97}: compiling src/module_{i % 1000:03d}.c ... ok",
            )
            for i in range(first, min(first + batch, lines + 1))
        ]
        assert feed.append_logs(service.db, job_id, 1, rows, cap=service.settings.log_cap)
    job_store.finish(
        service.db,
        job_id,
        1,
        JobState.SUCCEEDED,
        datetime.now(UTC),
        values={"exit_code": 0, "progress": 100},
        actor="bench:1:0000",
    )


# -- phase 3: the console (a child process) -------------------------------------------------


@dataclass
class Probe:
    """Set before an action: the first frame rendered while ``check()`` holds ends it."""

    check: Callable[[], object]
    started: float = 0.0
    done: float | None = None


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def system_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, all cores (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)

    return {
        "n": len(values),
        "p50": round(statistics.median(ordered), 2),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "max": round(ordered[-1], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


async def console_phase(cfg: dict[str, Any]) -> dict[str, Any]:
    t_begin = time.perf_counter()
    from textual import events

    from opsconsole.config import load_settings
    from opsconsole.runtime import open_service
    from opsconsole.tui.app import OpsConsole
    from opsconsole.tui.widgets.job_table import JobTable
    from opsconsole.tui.widgets.log_pane import LogView

    imported = time.perf_counter() - t_begin

    class TimedConsole(OpsConsole):  # the CSS path is relative to the class's module: pin it
        """The real console, plus a hook on every frame handed to the driver."""

        CSS_PATH = str(Path(sys.modules[OpsConsole.__module__].__file__ or "").parent / "app.tcss")

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.frames = 0
            self.probe: Probe | None = None
            self._ready_flag = False
            super().__init__(*args, **kwargs)

        @property  # type: ignore[override]
        def ready(self) -> bool:
            return self._ready_flag

        @ready.setter
        def ready(self, value: bool) -> None:
            self._ready_flag = value

        def _display(self, screen: Any, renderable: Any) -> None:
            super()._display(screen, renderable)
            if renderable is None:
                return
            self.frames += 1
            probe = self.probe
            if probe is not None and probe.done is None and probe.check():
                probe.done = time.perf_counter()

    async def settle(probe: Probe, timeout: float = 30.0) -> float:
        """Milliseconds from ``probe.started`` to the frame that showed the change."""
        deadline = time.perf_counter() + timeout
        while probe.done is None:
            if time.perf_counter() > deadline:
                raise TimeoutError("no frame showed the change")
            await asyncio.sleep(0.002)
        return (probe.done - probe.started) * 1000

    def send(app: TimedConsole, key: str) -> None:
        """A key event the way a terminal driver delivers it."""
        char = {"right_square_bracket": "]"}.get(key)
        event = events.Key(key, char)
        event.set_sender(app)
        assert app._driver is not None
        app._driver.send_message(event)

    async def press(app: TimedConsole, key: str, check: Callable[[], object]) -> float:
        probe = Probe(check)
        app.probe = probe
        probe.started = time.perf_counter()
        send(app, key)
        return await settle(probe)

    out: dict[str, Any] = {"import_s": round(imported, 3)}
    t0 = time.perf_counter()
    settings = load_settings(home=Path(cfg["home"]), catalog=Path(cfg["catalog"]), db=cfg["db"])
    service = open_service(settings)
    app = TimedConsole(service, embed=False)
    first = Probe(lambda: app.ready, started=t0)
    app.probe = first
    async with app.run_test(size=SIZE) as pilot:
        out["first_paint_s"] = round(await settle(first) / 1000, 3)
        out["first_paint_from_process_start_s"] = round(time.time() - cfg["spawned_at"], 3)
        out["rss_after_first_paint_mb"] = round(rss_mb(), 1)
        running = app.query_one("#running", JobTable)
        history = app.query_one("#history", JobTable)
        view = app.query_one(LogView)
        out["running_at_start"] = running.row_count

        # follow the first running job's log, then watch it live
        followed = running.selected_id
        assert followed is not None, "no running job to follow"
        app.show_log(followed)
        await settle_until(lambda: view.job_id == followed and len(view.lines) > 10)
        await asyncio.sleep(1.0)
        seq0 = view.lines[-1].seq
        frames0, cpu0, wall0 = app.frames, cpu_seconds(), time.perf_counter()
        busy0, total0 = system_ticks()
        rss_samples, lags = [], []
        end = wall0 + cfg["live_seconds"]
        profiler = cProfile.Profile() if cfg["profile"] else None
        if profiler is not None:
            profiler.enable()  # this thread only: the UI's event loop
        while time.perf_counter() < end:
            # event-loop lag: how late a 10 ms sleep wakes up = how long the UI was busy
            for _ in range(25):
                asked = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append((time.perf_counter() - asked - 0.01) * 1000)
            rss_samples.append(rss_mb())
        if profiler is not None:
            profiler.disable()
            stats = io.StringIO()
            pstats.Stats(profiler, stream=stats).sort_stats("cumulative").print_stats(40)
            Path(cfg["profile"]).write_text(stats.getvalue())
        wall = time.perf_counter() - wall0
        busy1, total1 = system_ticks()
        out["live"] = {
            "machine_busy_percent": round(100 * (busy1 - busy0) / max(1, total1 - total0), 1),
            "seconds": round(wall, 2),
            "cpu_percent_of_one_core": round(100 * (cpu_seconds() - cpu0) / wall, 1),
            "rss_mb_max": round(max(rss_samples), 1),
            "rss_mb_end": round(rss_samples[-1], 1),
            "frames_per_s": round((app.frames - frames0) / wall, 1),
            "log_lines_per_s_shown": round((view.lines[-1].seq - seq0) / wall, 1),
            "running_jobs": running.row_count,
            "ui_busy_ms": summary(lags),
        }

        # key to update: ] cycles the panes; down moves the History cursor
        pane_ms = []
        for _ in range(16):
            before = app.focused
            pane_ms.append(
                await press(
                    app,
                    "right_square_bracket",
                    lambda before=before: app.focused is not before,
                )
            )
            await asyncio.sleep(0.1)
        for _ in range(4):
            if history.has_focus:
                break
            await press(app, "right_square_bracket", lambda: True)
            await asyncio.sleep(0.05)
        assert history.has_focus
        down_ms = []
        for _ in range(cfg["keys"]):
            row = history.cursor_row
            down_ms.append(await press(app, "down", lambda row=row: history.cursor_row == row + 1))
            await asyncio.sleep(0.1)
        out["running_after_keys"] = running.row_count
        out["key_next_pane_ms"] = summary(pane_ms)
        out["key_history_down_ms"] = summary(down_ms)
        out["key_to_update_ms"] = summary(pane_ms + down_ms)

        # the 500,000-line log: open it, then PageUp through it
        big, total = cfg["big_job"], cfg["log_lines"]
        probe = Probe(lambda: view.job_id == big and view.lines and view.lines[-1].seq >= total)
        app.probe = probe
        probe.started = time.perf_counter()
        app.show_log(big)
        out["big_log_open_ms"] = round(await settle(probe), 1)
        out["big_log_window_lines"] = len(view.lines)
        view.focus()
        await pilot.pause()
        fetch_started: list[float] = []
        fetch_done: list[float] = []
        post, prepend = view.post_message, view.prepend

        def watch_post(message: Any) -> bool:
            if isinstance(message, LogView.NeedOlder):
                fetch_started.append(time.perf_counter())
            return post(message)

        def watch_prepend(lines: Any, *, has_older: bool) -> None:
            prepend(lines, has_older=has_older)
            fetch_done.append(time.perf_counter())

        view.post_message = watch_post  # type: ignore[method-assign]
        view.prepend = watch_prepend  # type: ignore[method-assign]
        page_ms, settled_ms = [], []
        for _ in range(cfg["pageups"]):
            y, n = view.scroll_offset.y, len(view.lines)
            page_ms.append(
                await press(
                    app,
                    "pageup",
                    lambda y=y, n=n: view.scroll_offset.y != y or len(view.lines) != n,
                )
            )
            # Textual animates a PageUp scroll: wait until it is over (a person reads the page)
            while app.animator.is_being_animated(view, "scroll_y"):
                await asyncio.sleep(0.005)
            settled_ms.append((time.perf_counter() - app.probe.started) * 1000)
            await asyncio.sleep(0.02)
        fetch_ms = [(d - s) * 1000 for s, d in zip(fetch_started, fetch_done, strict=False)]
        out["running_after_scroll"] = running.row_count
        out["samples_ms"] = {
            "next_pane": [round(x, 1) for x in pane_ms],
            "history_down": [round(x, 1) for x in down_ms],
            "pageup": [round(x, 1) for x in page_ms],
        }
        out["pageup_ms"] = summary(page_ms)
        out["pageup_scroll_done_ms"] = summary(settled_ms)
        out["older_fetches"] = len(fetch_done)
        out["older_fetch_ms"] = summary(fetch_ms)
        out["big_log_window_lines_after_scroll"] = len(view.lines)
        out["oldest_line_loaded"] = view.lines[0].seq
        out["rss_mb_end"] = round(rss_mb(), 1)
        out["rss_mb_peak"] = round(rss_mb("VmHWM"), 1)
    service.db.dispose()
    out["phase_s"] = round(time.perf_counter() - t_begin, 1)
    return out


async def settle_until(condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


# -- the parent: orchestrates, reports --------------------------------------------------------


def worker_env(settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}
    env.update(
        OPSCONSOLE_HOME=str(settings.home),
        OPSCONSOLE_DB=settings.db,
        OPSCONSOLE_CATALOG=str(settings.catalog),
        OPSCONSOLE_DRAIN_GRACE="1",
        OPSCONSOLE_KILL_GRACE="1",
    )
    return env


def wait_for(what: str, condition: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} did not happen within {timeout:g}s")
        time.sleep(0.1)


def machine() -> dict[str, Any]:
    import textual

    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "textual": textual.__version__,
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from opsconsole.config import load_settings
    from opsconsole.core.service import SubmitRequest
    from opsconsole.runtime import open_service

    began = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {message}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="opsconsole-bench-"))
    worker: subprocess.Popen[bytes] | None = None
    try:
        catalog = tmp / "catalog"
        write_catalog(catalog)
        settings = load_settings(home=tmp, catalog=catalog, db=f"sqlite:///{tmp / 'bench.db'}")
        service = open_service(settings)
        rng = random.Random(20260501)
        setup: dict[str, Any] = {}

        t = time.perf_counter()
        (big,) = seed_history(service, args.jobs, rng)
        setup["seed_jobs_s"] = round(time.perf_counter() - t, 1)
        say(f"seeded {args.jobs:,} finished jobs in {setup['seed_jobs_s']}s")
        t = time.perf_counter()
        seed_big_log(service, big, args.log_lines)
        setup["seed_log_s"] = round(time.perf_counter() - t, 1)
        say(f"wrote a {args.log_lines:,}-line log in {setup['seed_log_s']}s")

        log = (tmp / "worker.log").open("wb")
        worker = subprocess.Popen(
            [str(BIN), "worker", "--workers", str(args.chatty)],
            env=worker_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for("the worker pool", lambda: any(w.alive for w in service.workers()), 30)
        lines = int(args.chatty_seconds * 100)
        for _ in range(args.chatty):
            service.submit(SubmitRequest("chatty", {"lines": lines}))
        wait_for(
            f"{args.chatty} running jobs",
            lambda: service.counts()["running"] >= args.chatty,
            60,
        )
        say(f"{args.chatty} chatty jobs running; opening the console")

        cfg = {
            "home": str(tmp),
            "catalog": str(catalog),
            "db": settings.db,
            "big_job": big,
            "log_lines": args.log_lines,
            "live_seconds": args.live_seconds,
            "keys": args.keys,
            "pageups": args.pageups,
            "profile": str(args.profile) if args.profile else "",
            "spawned_at": time.time(),
        }
        child = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--console-phase", json.dumps(cfg)],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
            timeout=600,
        )
        found = [ln for ln in child.stdout.splitlines() if ln.startswith(MARK)]
        if child.returncode != 0 or not found:
            print(child.stdout)
            raise SystemExit(f"bench: the console phase failed (exit {child.returncode})")
        console = json.loads(found[-1][len(MARK) :])
        say("the console phase is done; cancelling the chatty jobs, stopping the workers")
        for job in service.running():
            service.cancel(job.id, reason="the benchmark is over")
        wait_for("the cancels", lambda: service.counts()["running"] == 0, 30)
        counts = service.counts()
        service.db.dispose()
        return {
            "machine": machine(),
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "parameters": {
                "finished_jobs": args.jobs,
                "chatty_jobs": args.chatty,
                "chatty_lines_per_s": 100,
                "chatty_seconds": args.chatty_seconds,
                "big_log_lines": args.log_lines,
                "size": f"{SIZE[0]}x{SIZE[1]}",
            },
            "setup": setup,
            "console": console,
            "store_counts_after": {k: v for k, v in counts.items() if v},
            "targets": TARGETS,
        }
    finally:
        if worker is not None:
            for _ in range(2):  # the first TERM drains, the second stops at once
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
                    try:
                        worker.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        continue
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        say("workers stopped")
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def verdict(value: float, target: float) -> str:
    return "ok" if value < target else "MISSED"


def report(results: dict[str, Any]) -> None:
    c = results["console"]
    keys, pane, down = c["key_to_update_ms"], c["key_next_pane_ms"], c["key_history_down_ms"]
    page, live = c["pageup_ms"], c["live"]
    lag = live["ui_busy_ms"]
    rss = max(live["rss_mb_max"], c["rss_mb_peak"])
    paint, key_t, rss_t = TARGETS["first_paint_s"], TARGETS["key_to_update_ms"], TARGETS["rss_mb"]
    rows = [
        (
            "first paint (open the store -> first frame with data)",
            f"{c['first_paint_s']:.3f} s",
            f"< {paint:g} s",
            verdict(c["first_paint_s"], paint),
        ),
        ("  from process start, imports included", f"{c['first_paint_from_process_start_s']} s"),
        (
            "key -> update p50 / p95 / max",
            f"{keys['p50']} / {keys['p95']} / {keys['max']} ms",
            f"< {key_t:g} ms (p95)",
            verdict(keys["p95"], key_t),
        ),
        ("  ] next pane p50 / p95", f"{pane['p50']} / {pane['p95']} ms"),
        ("  down in History p50 / p95", f"{down['p50']} / {down['p95']} ms"),
        ("CPU while live (one core = 100 %)", f"{live['cpu_percent_of_one_core']} %"),
        ("  the whole machine meanwhile (all cores)", f"{live['machine_busy_percent']} % busy"),
        ("UI busy while live (loop lag p50 / p99 / max)", f"{lag['p50']} / {lag['p99']} / "
         f"{lag['max']} ms"),
        ("RSS peak", f"{rss} MB", f"< {rss_t:g} MB", verdict(rss, rss_t)),
        ("frames/s, log lines/s shown while live", f"{live['frames_per_s']}, "
         f"{live['log_lines_per_s_shown']}"),
        ("open a 500,000-line log (tail on screen)", f"{c['big_log_open_ms']} ms"),
        ("PageUp p50 / p95 / max", f"{page['p50']} / {page['p95']} / {page['max']} ms"),
        ("  until its scroll animation ends, p50", f"{c['pageup_scroll_done_ms']['p50']} ms"),
        ("older lines fetched while scrolling: count, p50",
         f"{c['older_fetches']}, {c['older_fetch_ms'].get('p50', '-')} ms"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print()
    for name, value, *target in rows:
        print(f"{name:<{width}}  {value:<24} {' '.join(target)}")
    m = results["machine"]
    print(f"\nmachine: {m['cpus']} cores, {m['cpu_model']}, Python {m['python']}, ", end="")
    print(f"Textual {m['textual']}, SQLite {m['sqlite']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="finished jobs in the store")
    parser.add_argument("--chatty", type=int, default=20, help="chatty jobs (and worker slots)")
    parser.add_argument(
        "--chatty-seconds",
        type=float,
        default=150,
        help="how long each chatty job prints (long enough to last the whole console phase)",
    )
    parser.add_argument("--log-lines", type=int, default=500_000, help="lines of the big log")
    parser.add_argument("--live-seconds", type=float, default=10, help="live window for CPU/RSS")
    parser.add_argument("--keys", type=int, default=40, help="cursor moves measured in History")
    parser.add_argument("--pageups", type=int, default=100, help="PageUps through the big log")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile of the UI thread while live to this file"
    )
    parser.add_argument("--console-phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.console_phase:
        result = asyncio.run(console_phase(json.loads(args.console_phase)))
        print(MARK + json.dumps(result), flush=True)
        return 0
    results = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    report(results)
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
