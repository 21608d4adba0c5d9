"""Benchmark of the console under load (not a test): how fast it paints, answers keys,
scrolls History and what it costs while 20 chatty jobs run, on a store with 1,000,000
finished jobs.

    .venv/bin/python bench/tui_bench.py              (minutes; --help for the knobs)
    .venv/bin/python bench/tui_bench.py --quick      (a small store: under a minute)
    .venv/bin/python bench/tui_bench.py --cache DIR  (keep the seeded store for the next run)

1. A temporary SQLite store gets ``--jobs`` finished jobs (plain ``sqlite3`` inserts in the
   store's own formats, two audit events each) and one job with a ``--log-lines`` log
   (written with the store's own ``append_logs``, in batches).
2. A worker pool runs in a separate process (``opsconsole worker --workers 20``) and runs
   ``--chatty`` jobs that print about 100 lines a second (and a progress marker a second).
3. The console runs in another separate process (so its CPU and memory are its own), in
   Textual's headless mode at 160x50, and measures:

   - first paint: from opening the store until the first frame that shows every pane's
     first page; and when the header's counts of every state are on screen too;
   - key-to-update: from a key event (``]`` next pane, ``down`` in History) until the first
     frame rendered with its effect, p50/p95;
   - CPU, RSS and UI loop lag of the console process over ``--live-seconds`` of live
     updates while it follows one chatty job's log;
   - History to its end: the longest pause between frames while PageDown is held (a key
     every 33 ms), and End: until the oldest job is selected, and its longest pause;
   - opening the big log (until its last line is on screen) and PageUp through it.

A "frame" is a compositor update handed to the driver: the headless driver drops it
instead of writing it to a terminal, so terminal emulator time is not included.
Results go to ``bench/results/tui.json`` (rows in the shape every bench here writes, the
measurements in full under ``details``) and a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import itertools
import json
import os
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

from machine import describe

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
        "command": ["python3", "-u", "-c", CHATTY_CODE, "{{ lines }}"],  # from PATH
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


JOB_COLUMNS = list(
    job_row("x", "hello", "succeeded", {}, datetime.now(UTC), datetime.now(UTC), None)
)
EVENT_COLUMNS = ["job_id", "ts", "kind", "actor", "state", "attempt", "message", "data"]


def sqlite_time(ts: datetime) -> str:
    """A time as the store writes it in SQLite (naive UTC, microseconds)."""
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return sqlite_time(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def seed_history(path: Path, n: int, rng: random.Random, say: Callable[[str], None]) -> list[str]:
    """``n`` finished jobs over the last 30 days, each with its submitted and final event.

    Written with plain ``sqlite3`` (rows in id order, big transactions, the store's own
    column formats): a million jobs take a minute or two instead of twenty through the ORM
    layer. Returns the spare id (for the big log's job).
    """
    now = datetime.now(UTC) - timedelta(minutes=5)
    states = [s for s, w in OUTCOMES for _ in range(w)]
    ids = unique_ids(rng, n + 1)
    spare, ids = ids[n], sorted(ids[:n])  # id order: the primary key index grows at its end
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")  # 256 MB while seeding
    job_sql = (
        f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})"
    )
    event_sql = f"INSERT INTO job_events ({', '.join(EVENT_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?)"
    chunk = 50_000
    for start in range(0, n, chunk):
        job_rows, event_rows = [], []
        for job_id in ids[start : start + chunk]:
            template, params = rng.choice(HISTORY_TEMPLATES)
            state = rng.choice(states)
            created = now - timedelta(seconds=rng.uniform(60, 30 * 86400))
            started = created + timedelta(seconds=rng.uniform(0, 5))
            finished = started + timedelta(seconds=rng.expovariate(1 / 40))
            row = job_row(job_id, template, state, params(rng), created, started, finished)
            job_rows.append(tuple(sqlite_value(row[c]) for c in JOB_COLUMNS))
            event_rows.append(
                (job_id, sqlite_time(created), "submitted", "ops", "queued", None, "", "null")
            )
            event_rows.append(
                (job_id, sqlite_time(finished), state, "bench:1:0000", state, 1, "", "null")
            )
        with conn:
            conn.executemany(job_sql, job_rows)
            conn.executemany(event_sql, event_rows)
        if start and start % 200_000 == 0:
            say(f"  {start:,} jobs written")
    conn.close()
    return [spare]


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
            self.frame_log: list[float] | None = None
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
            if self.frame_log is not None:
                self.frame_log.append(time.perf_counter())
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
    # the first frame with every pane's first page (``painted``; before it existed, ``ready``)
    first = Probe(lambda: getattr(app, "painted", None) or app.ready, started=t0)
    app.probe = first
    async with app.run_test(size=SIZE) as pilot:
        out["first_paint_s"] = round(await settle(first) / 1000, 3)
        await settle_until(lambda: app.ready, timeout=60)
        out["header_counts_s"] = round(time.perf_counter() - t0, 3)  # every state counted
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
            # wait for this key's focus change: a key still in flight when the loop sees
            # History focused would move the focus on to the log pane under the Down keys
            before = app.focused
            await press(
                app, "right_square_bracket", lambda before=before: app.focused is not before
            )
            await asyncio.sleep(0.05)
        assert history.has_focus
        down_ms = []
        for _ in range(cfg["keys"]):
            # the job below the cursor, not the row number: a job finishing meanwhile comes
            # in above the cursor, and the cursor stays on its job
            below = str(history.ordered_rows[history.cursor_row + 1].key.value)
            try:
                down_ms.append(
                    await press(app, "down", lambda below=below: history.selected_id == below)
                )
            except TimeoutError:
                raise TimeoutError(
                    f"down in History: wanted {below}, cursor on row {history.cursor_row} "
                    f"({history.selected_id}) of {history.row_count}, focused {app.focused!r}"
                ) from None
            await asyncio.sleep(0.1)
        out["running_after_keys"] = running.row_count

        # History to its end: hold PageDown (a key every 33 ms, as a terminal repeats a held
        # key), then End. A pause is the longest time between two frames while keys arrive.
        pages = [0]
        history_call = app.service.history

        def counted(*a: Any, **kw: Any) -> Any:
            pages[0] += 1
            return history_call(*a, **kw)

        app.service.history = counted  # type: ignore[method-assign]
        history.move_cursor(row=0)
        await pilot.pause()
        await asyncio.sleep(0.3)
        frame_log: list[float] = []
        app.frame_log = frame_log
        first_id = history.selected_id
        hold_start = time.perf_counter()
        for _ in range(cfg["holds"]):
            send(app, "pagedown")
            await asyncio.sleep(1 / 30)
        hold_end = time.perf_counter()
        await asyncio.sleep(0.5)  # the last keys' frames
        app.frame_log = None
        ticks = [hold_start, *[f for f in frame_log if f <= hold_end + 0.5]]
        gaps = [(b - a) * 1000 for a, b in itertools.pairwise(ticks)]
        moved = history.selected_id != first_id
        out["history_hold_pagedown"] = {
            "keys": cfg["holds"],
            "seconds": round(hold_end - hold_start, 2),
            "frames": len(frame_log),
            "max_pause_ms": round(max(gaps), 1) if gaps else None,
            "pause_ms": summary(gaps),
            "pages_fetched": pages[0],
            "moved": moved,
        }
        oldest = cfg["oldest_job"]
        frame_log = []
        app.frame_log = frame_log
        probe = Probe(lambda: history.selected_id == oldest)
        app.probe = probe
        probe.started = time.perf_counter()
        send(app, "end")
        try:
            out["history_end_ms"] = round(await settle(probe, timeout=20.0), 1)
        except TimeoutError:
            out["history_end_ms"] = None  # End did not reach the oldest job within 20 s
        end_done = probe.done or time.perf_counter()
        app.frame_log = None
        ticks = [probe.started, *[f for f in frame_log if f <= end_done]]
        gaps = [(b - a) * 1000 for a, b in itertools.pairwise(ticks)]
        out["history_end_max_pause_ms"] = round(max(gaps), 1) if gaps else None
        out["history_end_reached_oldest"] = history.selected_id == oldest
        app.service.history = history_call  # type: ignore[method-assign]
        # back to the top, as an operator would, for the log measurements below
        send(app, "home")
        await asyncio.sleep(0.5)
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
        store = tmp / "bench.db"
        setup: dict[str, Any] = {}
        cached = args.cache / f"tui-{args.jobs}-{args.log_lines}.db" if args.cache else None
        reuse = cached is not None and cached.exists()
        if reuse:
            assert cached is not None
            t = time.perf_counter()
            shutil.copyfile(cached, store)
            big = json.loads(cached.with_suffix(".json").read_text())["big_job"]
            setup["copy_cached_store_s"] = round(time.perf_counter() - t, 1)
            say(f"copied the cached store {cached} in {setup['copy_cached_store_s']}s")
        settings = load_settings(home=tmp, catalog=catalog, db=f"sqlite:///{store}")
        service = open_service(settings)
        if not reuse:
            rng = random.Random(20260501)
            t = time.perf_counter()
            (big,) = seed_history(store, args.jobs, rng, say)
            setup["seed_jobs_s"] = round(time.perf_counter() - t, 1)
            say(f"seeded {args.jobs:,} finished jobs in {setup['seed_jobs_s']}s")
            t = time.perf_counter()
            seed_big_log(service, big, args.log_lines)
            setup["seed_log_s"] = round(time.perf_counter() - t, 1)
            say(f"wrote a {args.log_lines:,}-line log in {setup['seed_log_s']}s")
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                with sqlite3.connect(store) as conn:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                shutil.copyfile(store, cached)
                cached.with_suffix(".json").write_text(json.dumps({"big_job": big}))
                say(f"kept a copy of the store for the next run: {cached}")
        with sqlite3.connect(store) as conn:
            oldest = conn.execute(
                "SELECT id FROM jobs WHERE finished_at IS NOT NULL ORDER BY finished_at, id LIMIT 1"
            ).fetchone()[0]

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
            "oldest_job": oldest,
            "holds": args.holds,
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
            "machine": describe(textual=__import__("textual").__version__),
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


def row(
    workload: str,
    value: float | None,
    unit: str,
    *,
    spread: list[float] | None = None,
    runs: int = 1,
    below: float | None = None,
) -> dict[str, Any]:
    """One row of the brief's JSON shape; ``below``: the target is "under this"."""
    met = None if below is None or value is None else value < below
    return {
        "workload": workload,
        "subject": "opsconsole console (SQLite)",
        "value": value,
        "unit": unit,
        "spread": spread if spread is not None else [value, value],
        "runs": runs,
        "target": None if below is None else f"< {below:g} {unit}",
        "met": met,
    }


def rows_of(results: dict[str, Any]) -> list[dict[str, Any]]:
    c, p = results["console"], results["parameters"]
    live, keys = c["live"], c["key_to_update_ms"]
    hold = c.get("history_hold_pagedown", {})
    samples = c["samples_ms"]["next_pane"] + c["samples_ms"]["history_down"]
    spread = [min(samples), max(samples)] if samples else None
    n = p["finished_jobs"]
    rss = max(live["rss_mb_max"], c["rss_mb_peak"])
    return [
        row(f"first paint, {n:,} finished jobs", c["first_paint_s"], "s",
            below=TARGETS["first_paint_s"]),
        row("header counts of every state on screen", c.get("header_counts_s"), "s"),
        row(f"key -> update p50, {p['chatty_jobs']} jobs x 100 lines/s", keys["p50"], "ms",
            spread=spread, runs=keys["n"]),
        row(f"key -> update p95, {p['chatty_jobs']} jobs x 100 lines/s", keys["p95"], "ms",
            spread=spread, runs=keys["n"], below=TARGETS["key_to_update_ms"]),
        row("History: longest pause holding PageDown (30 keys/s)", hold.get("max_pause_ms"),
            "ms", runs=hold.get("keys", 0), below=TARGETS["key_to_update_ms"]),
        row("History: End until the oldest job is selected", c.get("history_end_ms"), "ms"),
        row("History: longest pause during End", c.get("history_end_max_pause_ms"), "ms",
            below=TARGETS["key_to_update_ms"]),
        row("UI loop lag p99 while live", live["ui_busy_ms"].get("p99"), "ms",
            spread=[live["ui_busy_ms"].get("p50", 0), live["ui_busy_ms"].get("max", 0)],
            runs=live["ui_busy_ms"]["n"]),
        row("CPU of the console while live (one core = 100)", live["cpu_percent_of_one_core"],
            "%"),
        row("RSS peak", rss, "MB", below=TARGETS["rss_mb"]),
        row(f"open a {p['big_log_lines']:,}-line log (tail on screen)", c["big_log_open_ms"],
            "ms"),
    ]  # fmt: skip


def report(doc: dict[str, Any]) -> None:
    width = max(len(r["workload"]) for r in doc["rows"])
    print()
    for r in doc["rows"]:
        value = "-" if r["value"] is None else f"{r['value']:g} {r['unit']}"
        verdict = {True: "ok", False: "MISSED", None: ""}[r["met"]]
        print(f"{r['workload']:<{width}}  {value:<14} {r['target'] or '':<10} {verdict}")
    m = doc["machine"]
    print(f"\nmachine: {m['cpus']} cores, {m['cpu']}, Python {m['python']}, ", end="")
    print(f"Textual {m['textual']}, SQLite {m['sqlite']}")
    for note in doc["notes"]:
        print(f"note: {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000, help="finished jobs in the store")
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
    parser.add_argument(
        "--holds", type=int, default=150, help="PageDowns sent while holding it in History"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        help="a directory that keeps the seeded store between runs (seeding 1M jobs: minutes)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile of the UI thread while live to this file"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small store and short phases: under a minute"
    )
    parser.add_argument("--console-phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.console_phase:
        result = asyncio.run(console_phase(json.loads(args.console_phase)))
        print(MARK + json.dumps(result), flush=True)
        return 0
    if args.quick:
        args.jobs, args.log_lines, args.chatty, args.chatty_seconds = 20_000, 20_000, 5, 60
        args.live_seconds, args.keys, args.pageups, args.holds = 3, 10, 5, 30
    results = run(args)
    c = results["console"]
    doc = {
        "bench": "tui",
        "machine": results["machine"],
        "when": results["when"],
        "rows": rows_of(results),
        "notes": [
            f"{results['parameters']['finished_jobs']:,} finished jobs, "
            f"{results['parameters']['chatty_jobs']} jobs printing 100 lines/s each, "
            f"{results['parameters']['size']} headless; one run, samples as runs",
            f"the whole machine was {c['live']['machine_busy_percent']}% busy while live",
            "a frame is a compositor update handed to Textual's headless driver "
            "(terminal time not included)",
        ],
        "details": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    report(doc)
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
