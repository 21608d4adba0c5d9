"""Two scheduler processes on one store fire each time once: real processes, one SQLite file.

The first drives the tick with a settable clock in two ``python`` processes started together;
the second runs two installed ``opsconsole worker`` processes on the real clock against a
one-second schedule. Either way: one job per fire, and one ledger row per fire time.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from cli_support import worker_env
from support import wait_until, write_template

from opsconsole.config import Settings
from opsconsole.core.schedules import ScheduleRequest
from opsconsole.core.service import OpsService
from opsconsole.core.store.db import jobs, schedule_fires

BIN = Path(sys.executable).parent / "opsconsole"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

TICKER = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime, timedelta
    from pathlib import Path
    from opsconsole.config import load_settings
    from opsconsole.core.clock import SettableClock
    from opsconsole.engine.scheduler import tick
    from opsconsole.runtime import open_service

    home, catalog, db, go, start, minutes = sys.argv[1:7]
    t0 = datetime.fromisoformat(start)
    clock = SettableClock(t0)
    svc = open_service(load_settings(home=home, catalog=catalog, db=db), clock=clock)
    deadline = time.monotonic() + 60
    while not Path(go).exists():  # both start ticking together
        if time.monotonic() > deadline:
            sys.exit("never told to go")
        time.sleep(0.01)
    for m in range(1, int(minutes) + 1):
        for s in (0, 1, 2):  # a tick a second: each fire time is seen three times
            t = t0 + timedelta(minutes=m, seconds=s)
            clock.set(t)
            tick(svc, t)
    print("done")
    """
)


def _env(settings: Settings) -> dict[str, str]:
    return worker_env(settings, OPSCONSOLE_POLL_INTERVAL="0.1", OPSCONSOLE_DRAIN_GRACE="2")


def _count(svc: OpsService) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    with svc.db.read() as conn:
        fires = [dict(r) for r in conn.execute(sa.select(schedule_fires)).mappings()]
        made = [
            dict(r)
            for r in conn.execute(sa.select(jobs).where(jobs.c.schedule.is_not(None))).mappings()
        ]
    return fires, made


def test_two_ticking_processes_on_one_store_make_exactly_one_job_per_fire(
    settings: Settings, clocked: OpsService, catalog: Path, tmp_path: Path
) -> None:
    write_template(catalog, "echo", "runner: shell\ncommand: [echo, hi]\n")
    clocked.clock.set(T0)  # type: ignore[attr-defined]
    for name, catchup in (("every-minute", "all"), ("also", "latest")):
        clocked.add_schedule(
            ScheduleRequest(
                name=name, template="echo", every="1m", overlap="allow", catchup=catchup
            )
        )
    go = tmp_path / "go"
    minutes = 30
    argv = [
        sys.executable, "-c", TICKER, str(settings.home), str(settings.catalog), settings.db,
        str(go), T0.isoformat(), str(minutes),
    ]  # fmt: skip
    procs = [
        subprocess.Popen(argv, env=_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    go.touch()
    try:
        for p in procs:
            out, err = p.communicate(timeout=180)
            assert p.returncode == 0 and out.strip() == b"done", err.decode()[-2000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    fires, made = _count(clocked)
    for name in ("every-minute", "also"):
        times = [f["fire_at"] for f in fires if f["schedule"] == name]
        assert sorted(times) == [T0 + timedelta(minutes=m) for m in range(1, minutes + 1)]
    assert {f["status"] for f in fires} == {"fired"}
    assert len(made) == len(fires) == 2 * minutes
    assert sorted(f["job_id"] for f in fires) == sorted(j["id"] for j in made)


def test_two_worker_processes_fire_a_one_second_schedule_once_per_second(
    settings: Settings, service: OpsService, catalog: Path
) -> None:
    write_template(catalog, "echo", "runner: shell\ncommand: [echo, hi]\n")
    service.add_schedule(
        ScheduleRequest(name="tick", template="echo", every="1s", overlap="allow", catchup="all")
    )
    log = Path(settings.home) / "workers.out"
    with log.open("wb") as out:
        workers = [
            subprocess.Popen(
                [str(BIN), "worker", "--workers", "2"],
                env=_env(settings),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            for _ in range(2)
        ]
    try:
        wait_until(lambda: len(_count(service)[0]) >= 8, timeout=60)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=30)
    fires, made = _count(service)
    assert len(fires) >= 8, log.read_text()[-2000:]
    assert {f["status"] for f in fires} == {"fired"}, fires
    assert len(made) == len(fires)
    assert max(Counter(j["id"] for j in made).values()) == 1
    assert sorted(f["job_id"] for f in fires) == sorted(j["id"] for j in made)
    # each fire time once, a second apart
    times = sorted(f["fire_at"] for f in fires)
    assert all((b - a) == timedelta(seconds=1) for a, b in itertools.pairwise(times))
