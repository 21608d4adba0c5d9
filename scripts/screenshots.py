"""SVG screenshots of the real console on fixed sample data: ``screenshots/*.svg``.

    .venv/bin/python scripts/screenshots.py      (or: make screenshots)

A temporary store is seeded through the real store functions (insert, claim, log batches,
progress, finish) on a settable clock, with fixed job ids, so every run draws the same
pictures: the same ids, the same "5m ago". The app runs in-process (``App.run_test``)
with no embedded pool and no live feed, and each screen is reached with the keys an
operator would press.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Select

from opsconsole.config import load_settings
from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import feed
from opsconsole.core.store import jobs as job_store
from opsconsole.runtime import open_service
from opsconsole.tui.app import PANES, OpsConsole
from opsconsole.tui.screens.approval import ApprovalScreen
from opsconsole.tui.screens.job import JobScreen
from opsconsole.tui.screens.submit import SubmitScreen, field_id
from opsconsole.tui.widgets.job_table import JobTable
from opsconsole.tui.widgets.log_pane import LogView

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "screenshots"
NOW = datetime(2026, 5, 1, 14, 30, tzinfo=UTC)
WORKER = "ops1:4242:a1b2"
STORE = "sqlite:/home/ops/.local/share/opsconsole/opsconsole.db"
"""What the header shows: the default store path, not this run's temporary directory."""
S = JobState

MAIN_LOG_JOB = "r7kd2m"
"""The running deploy whose log tail the main screen shows."""
LONG_LOG_JOB = "b8kw3n"
"""A finished deploy with a few hundred log lines (log.svg)."""
DETAIL_JOB = "m3hv6c"
"""A health check that failed once and succeeded on its retry (job.svg)."""
GATED_JOB = "q2rv7n"
"""A restart awaiting approval (main.svg counts it, approval.svg is its prompt)."""
PLAN_JOB = "p8tf4w"
"""A Terraform change of web_app awaiting approval of its plan (plan.svg is its prompt)."""
PLAN_HASH = "3f9a1c7e52d04b8a9e6f1d2c3b4a59687f0e1d2c3b4a5968708192a3b4c5d6e7"
PLAN_SUMMARY = {
    "add": 2,
    "change": 1,
    "destroy": 1,
    "replace": 1,
    "resources": [
        {"address": "terraform_data.app_server", "action": "create"},
        {"address": "terraform_data.dns_record", "action": "create"},
        {"address": "terraform_data.config", "action": "update"},
        {"address": "terraform_data.legacy_cache", "action": "delete"},
        {"address": "terraform_data.load_balancer", "action": "replace"},
        {"address": "terraform_data.network", "action": "no-op"},
    ],
    "outputs": {
        "url": {"action": "create", "sensitive": False},
        "size": {"action": "update", "sensitive": False},
        "admin_password": {"action": "create", "sensitive": True},
    },
}
"""What ``terraform show -json`` of the plan summarises to (the runner's summary shape)."""
FALLBACK_WEB_APP = """name: web_app
description: A web app behind a URL (approved before it changes)
runner: terraform
terraform:
  module: terraform/web_app
  instance: "{{ app_name }}"
  vars: {size: "{{ size }}"}
params:
  app_name: {type: string, required: true}
  size: {type: integer, default: 2}
approval:
  required: 1
"""
"""Drawn when the catalog has no ``web_app`` sample: the plan is seeded either way."""
SCHEDULE_JOBS = ["e4nz7r", "y2kq8m", "a9wd3t", "u6hc5x", "q7rm2f", "l3vs9b"]
"""The jobs the schedules fired, oldest first (schedules.svg; seeded after the others)."""
HOSTS_JOB = "k6vp2t"
"""A site-ping playbook half way through eight hosts (hosts.svg; seeded after the others)."""
KEY = "b3BzY29uc29sZS1zY3JlZW5zaG90cy1maXhlZC1rZXk="
"""A fixed secret key: the digest an approval binds depends on it, and must not change."""
ALL_IDS = {
    "checks.svg": ["ck0014"],
    "main.svg": [
        MAIN_LOG_JOB,
        "s9fb3x",
        "d4hq8n",
        "h5xk9p",
        "c8tn4w",
        "w3vj6b",
        "f2nq8d",
        GATED_JOB,
    ],
    "log.svg": [LONG_LOG_JOB],
    "submit.svg": [],
    "job.svg": [DETAIL_JOB],
    "approval.svg": [GATED_JOB],
    "plan.svg": [PLAN_JOB],
    "hosts.svg": [HOSTS_JOB],
    "schedules.svg": SCHEDULE_JOBS[-3:],
}


def at(minutes: float) -> datetime:
    """``minutes`` before NOW."""
    return NOW - timedelta(minutes=minutes)


# -- seeding through the store ------------------------------------------------------------


class Seeder:
    def __init__(self, service: OpsService, clock: SettableClock) -> None:
        self.service = service
        self.db = service.db
        self.clock = clock

    def submit(
        self,
        job_id: str,
        template: str,
        params: dict[str, Any],
        when: datetime,
        *,
        by: str = "ops",
        **options: Any,
    ) -> None:
        """Insert a job with a fixed id, validated like ``OpsService.submit`` does it, as
        asked for by ``by``."""
        self.clock.set(when)
        req = SubmitRequest(template=template, params=params, **options)
        row, after = self.service._prepare(req)
        row = {**row, "id": job_id, "submitted_by": by}
        job_store.insert(self.db, row, after, actor=by, now=when)

    def start(self, job_id: str, when: datetime) -> None:
        self.clock.set(when)
        row = claim_store.claim(self.db, WORKER, when, self.service.settings.lease)
        assert row is not None and row["id"] == job_id, (job_id, row and row["id"])

    def log(self, job_id: str, attempt: int, start: datetime, lines: list[tuple[str, str]]) -> None:
        """(stream, text) lines, a quarter second apart from ``start``."""
        batch = [
            (start + timedelta(seconds=i / 4), stream, text)
            for i, (stream, text) in enumerate(lines)
        ]
        for i in range(0, len(batch), 500):
            feed.append_logs(
                self.db, job_id, attempt, batch[i : i + 500], cap=self.service.settings.log_cap
            )

    def progress(self, job_id: str, attempt: int, when: datetime, pct: int, step: str) -> None:
        self.clock.set(when)
        job_store.update_progress(self.db, job_id, attempt, when, progress=pct, step=step)

    def finish(
        self,
        job_id: str,
        attempt: int,
        state: JobState,
        when: datetime,
        *,
        exit_code: int | None = 0,
        result: Any = None,
        error: dict[str, Any] | None = None,
        message: str = "",
        kind: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        self.clock.set(when)
        vals = {"exit_code": exit_code, "result": result, "error": error, "pid": None}
        if state == S.SUCCEEDED:
            vals["progress"] = 100
        vals.update(values or {})
        out = job_store.finish(
            self.db,
            job_id,
            attempt,
            state,
            when,
            values=vals,
            kind=kind,
            message=message,
            actor=WORKER,
        )
        assert out is not None, job_id


def deploy_lines(app: str, version: str, env: str, instances: int) -> list[tuple[str, str]]:
    out = [
        ("out", f"deploying {app} {version} to {env}"),
        ("out", f"pulling registry.example.com/{app}:{version}"),
    ]
    for layer in range(1, 9):
        out.append(("out", f"  layer {layer}/8 sha256:{(layer * 7919) % 65536:04x}… done"))
    out += [
        ("out", "running database migrations"),
        ("out", "  0042_add_order_index ... ok (1.8s)"),
        ("out", "  0043_backfill_sku ... ok (12.4s)"),
    ]
    for i in range(1, instances + 1):
        name = f"{app}-web-{i:02d}"
        out.append(("out", f"[{i}/{instances}] draining {name}"))
        out.append(("out", f"[{i}/{instances}] {name}: stopped 1.3.9, starting {version}"))
        if i % 7 == 3:
            out.append(("err", f"WARN {name}: health check slow (2.1s > 2.0s), retrying"))
        out.append(("out", f"[{i}/{instances}] {name}: healthy after {1 + i % 4}.{i % 10}s"))
        out.append(("out", f"[{i}/{instances}] {name}: back in the pool"))
    return out


def seed(service: OpsService, clock: SettableClock) -> None:
    s = Seeder(service, clock)
    token = {"token": "s3cr3t-token"}

    # -- history: finished jobs, oldest first --------------------------------------------
    s.submit("g7tq2b", "hello", {"name": "ops"}, at(68))
    s.start("g7tq2b", at(68))
    s.log("g7tq2b", 1, at(68), [("out", "Hello, ops!")])
    s.finish("g7tq2b", 1, S.SUCCEEDED, at(67.9))

    shop = {"app": "shop", "version": "1.4.1", "env": "production", **token}
    s.submit(LONG_LOG_JOB, "deploy-app", shop, at(62))
    s.start(LONG_LOG_JOB, at(62))
    lines = deploy_lines("shop", "1.4.1", "production", 60)
    s.log(LONG_LOG_JOB, 1, at(62), lines)
    s.finish(
        LONG_LOG_JOB,
        1,
        S.SUCCEEDED,
        at(62) + timedelta(seconds=len(lines) / 4 + 2),
        result={"app": "shop", "version": "1.4.1", "instances": 60},
    )

    s.submit("n6zc4k", "disk-report", {"path": "/var", "top": 5}, at(55))
    s.start("n6zc4k", at(55))
    s.finish("n6zc4k", 1, S.SUCCEEDED, at(54.8), result={"path": "/var", "used_percent": 71})

    s.submit("t2xw9g", "rotate-logs", {"files": ["/var/log/app.log", "/nope"]}, at(47))
    s.start("t2xw9g", at(47))
    s.log("t2xw9g", 1, at(47), [("out", "rotated /var/log/app.log"), ("err", "/nope: missing")])
    s.finish("t2xw9g", 1, S.PARTIAL, at(46.9), exit_code=3, message="1 of 2 files missing")

    # the detail screen's job: a failed first attempt, a retry after backoff, a success
    url = {"url": "https://shop.example.com/health", "expect": 200}
    s.submit(DETAIL_JOB, "http-check", url, at(40), tags=("smoke",))
    s.start(DETAIL_JOB, at(40))
    s.log(DETAIL_JOB, 1, at(40), [("err", "GET https://shop.example.com/health: 503")])
    s.finish(
        DETAIL_JOB,
        1,
        S.SCHEDULED,
        at(39.9),
        exit_code=None,
        error={"message": "GET returned 503, expected 200", "kind": "http", "detail": None},
        kind="retried",
        message="attempt 1 failed: GET returned 503, expected 200; retry in 5.2s",
        values={"run_at": at(39.9) + timedelta(seconds=5.2)},
    )
    s.start(DETAIL_JOB, at(39.8))
    s.log(DETAIL_JOB, 2, at(39.8), [("out", "GET https://shop.example.com/health: 200 (84 ms)")])
    s.finish(
        DETAIL_JOB,
        2,
        S.SUCCEEDED,
        at(39.8) + timedelta(seconds=0.4),
        exit_code=None,
        result={
            "status": "ok",
            "summary": "GET https://shop.example.com/health -> 200 in 84 ms",
            "latency_ms": 84.0,
            "http_status": 200,
        },
    )

    s.submit("v5jp8r", "deploy-app", {**shop, "version": "1.4.2", "env": "staging"}, at(33))
    s.start("v5jp8r", at(33))
    s.log("v5jp8r", 1, at(33), [("out", "deploying shop 1.4.2 to staging"), ("err", "denied")])
    s.finish(
        "v5jp8r",
        1,
        S.FAILED,
        at(32.5),
        exit_code=1,
        error={"message": "exit code 1", "kind": "exit", "detail": None},
    )

    s.submit("x9mb5d", "disk-report", {"path": "/srv", "top": 5}, at(28), timeout="30s")
    s.start("x9mb5d", at(28))
    s.progress("x9mb5d", 1, at(27.9), 40, "Measuring the largest directories under /srv")
    s.finish(
        "x9mb5d",
        1,
        S.TIMED_OUT,
        at(28) + timedelta(seconds=30.4),
        exit_code=None,
        error={"message": "timed out after 30s", "kind": "timeout", "detail": None},
    )

    s.submit("k3cw7q", "hello", {"name": "team"}, at(21))
    s.clock.set(at(20))
    service.cancel("k3cw7q", reason="not needed")

    hosts = ["web1", "web2", "db1"]
    s.submit("f2nq8d", "sync-inventory", {"hosts": hosts, "fail": ["db1"]}, at(12))
    s.start("f2nq8d", at(12))
    s.log("f2nq8d", 1, at(12), [("out", "web1: 42 records synced"), ("err", "db1: unreachable")])
    s.finish(
        "f2nq8d",
        1,
        S.PARTIAL,
        at(11.9),
        exit_code=None,
        result={"synced": ["web1", "web2"], "failed": ["db1"]},
        message="1 of 3 hosts failed",
    )

    # -- running: three jobs on the worker, with progress ---------------------------------
    s.submit(MAIN_LOG_JOB, "deploy-app", {**shop, "version": "1.4.2"}, at(2.5))
    s.start(MAIN_LOG_JOB, at(2.5))
    lines = deploy_lines("shop", "1.4.2", "production", 60)[:150]
    s.log(MAIN_LOG_JOB, 1, at(2.5), lines)
    s.progress(MAIN_LOG_JOB, 1, at(0.2), 60, "Rolling out web tier")

    fleet = [f"web{i}" for i in range(1, 9)]
    s.submit("s9fb3x", "sync-inventory", {"hosts": fleet}, at(1.1))
    s.start("s9fb3x", at(1.1))
    s.log("s9fb3x", 1, at(1.1), [("out", f"{h}: 42 records synced") for h in fleet[:3]])
    s.progress("s9fb3x", 1, at(0.1), 37, "Syncing web4")

    s.submit("d4hq8n", "disk-report", {"path": "/var", "top": 10}, at(0.3))
    s.start("d4hq8n", at(0.3))
    s.progress("d4hq8n", 1, at(0.05), 40, "Measuring /var")

    # -- the queue: ready, urgent, scheduled, waiting ---------------------------------------
    s.submit("h5xk9p", "hello", {"name": "ops"}, at(0.9))
    s.submit("z8rd3f", "rotate-logs", {"files": ["/var/log/nginx/access.log"]}, at(0.6))
    s.submit("j4ns6v", "disk-report", {"path": "/home"}, at(0.4), priority="critical")
    s.submit("c8tn4w", "http-check", {"url": "https://shop.example.com/"}, at(0.8), run_in="15m")
    s.submit("w3vj6b", "hello", {"name": "after-deploy"}, at(0.7), after=(MAIN_LOG_JOB,))
    restart = {"service": "nginx", "env": "production"}
    s.submit(GATED_JOB, "restart-service", restart, at(6), by="alice", confirm="production")

    seed_plan(s)

    # -- the worker that runs them ---------------------------------------------------------------
    s.clock.set(NOW)
    claim_store.register_worker(
        service.db, WORKER, host="ops1", pid=4242, slots=4, now=at(90), version="0.1.0"
    )
    claim_store.heartbeat(
        service.db,
        WORKER,
        NOW,
        lease_s=service.settings.lease,
        slots=4,
        busy=3,
        state="running",
        running=[],
    )


def sample_params(template: Any) -> dict[str, Any]:
    """Values for a template's required parameters without a default (``shop`` for text)."""
    out: dict[str, Any] = {}
    for name, p in template.params.items():
        if p.default is not None or not p.required:
            continue
        if p.choices:
            out[name] = p.choices[0]
        elif p.type == "integer":
            out[name] = p.min if p.min is not None else 2
        elif p.type == "boolean":
            out[name] = False
        else:
            out[name] = "shop"
    return out


def seed_plan(s: Seeder) -> None:
    """A web_app change planned and parked at its gate, as the Terraform runner leaves it:
    the plan recorded with ``plans.add``, the job awaiting approval in its apply phase."""
    from opsconsole.core.catalog import render
    from opsconsole.core.store import plans as plan_store
    from opsconsole.core.store.db import jobs

    template = s.service.catalog.get("web_app")
    params = sample_params(template)
    assert template.terraform is not None
    s.submit(PLAN_JOB, "web_app", params, at(3), by="alice")
    plan_store.add(
        s.db,
        job_id=PLAN_JOB,
        attempt=1,
        round_=1,
        template="web_app",
        instance=render(template.terraform.instance, params),
        hash_=PLAN_HASH,
        summary=PLAN_SUMMARY,
        file="/home/ops/.local/share/opsconsole/instances/web_app/shop/plan.tfplan",
        now=at(2.5),
    )
    with s.db.write() as conn:
        conn.execute(
            jobs.update()
            .where(jobs.c.id == PLAN_JOB)
            .values(
                state=S.AWAITING_APPROVAL.value,
                phase="apply",
                gate_round=1,
                approval_expires_at=at(2.5) + timedelta(days=1),
            )
        )


PLAYBOOK = [
    ("Prepare", "Gathering Facts"),
    ("Prepare", "Check disk space"),
    ("Web tier", "Install nginx"),
    ("Web tier", "Write site config"),
    ("Web tier", "Open firewall port 443"),
    ("Web tier", "Restart nginx"),
    ("Database", "Install postgresql"),
    ("Database", "Tune shared_buffers"),
    ("Verify", "Probe /healthz"),
]
HOST_RUNS = {
    # host: one status per task it reached (". " = not in that play), the last one running
    "web1": "ok ok changed changed ok changed . . running",
    "web2": "ok ok changed changed ok changed . . running",
    "web3": "ok ok ok ok skipped ok . . ok",
    "db1": "ok ok . . . . changed changed running",
    "db2": "ok ok . . . . failed",
    "cache1": "unreachable",
    "lb1": "ok ok skipped skipped skipped skipped . . ok",
    "mon1": "ok ok ok ok ok ok . . ignored",
}
HOST_MESSAGES = {
    ("db2", 6): "No package matching 'postgresql-17' is available",
    ("cache1", 0): "Failed to connect to the host via ssh: connect to host cache1 port 22: "
    "Connection timed out",
    ("mon1", 8): "Status code was 503 and not [200]: HTTP Error 503: Service Unavailable",
}


def seed_hosts(service: OpsService, clock: SettableClock) -> None:
    """A running Ansible job and its grid cells, written as the Ansible runner writes them
    (``core/store/hosts.record``). Its template snapshot is given here, so the picture needs
    no playbook in ``data/``."""
    from opsconsole.core.store import hosts as host_store

    s = Seeder(service, clock)
    clock.set(at(3))
    row, _ = service._prepare(SubmitRequest(template="hello", params={"name": "ops"}))
    spec = {
        "name": "site-ping",
        "description": "Configure the web site's hosts",
        "runner": "ansible",
        "ansible": {"playbook": "playbooks/site.yml", "inventory": "inventory/site.ini"},
    }
    row = {**row, "id": HOSTS_JOB, "template": "site-ping", "spec": spec, "params": {}}
    job_store.insert(service.db, row, [], actor="ops", now=at(3))
    s.start(HOSTS_JOB, at(3))
    cells = []
    for host, run in HOST_RUNS.items():
        for seq, status in enumerate(run.split()):
            if status == ".":
                continue
            play, task = PLAYBOOK[seq]
            started = at(3) + timedelta(seconds=15 * seq + len(host))
            cells.append(
                {
                    "seq": seq,
                    "host": host,
                    "status": status,
                    "play": play,
                    "task": task,
                    "msg": HOST_MESSAGES.get((host, seq), ""),
                    "started_at": started,
                    "ended_at": None if status == "running" else started + timedelta(seconds=4),
                }
            )
    host_store.record(service.db, HOSTS_JOB, 1, cells)
    s.progress(HOSTS_JOB, 1, at(0.1), 88, "Probe /healthz")
    clock.set(NOW)


def seed_schedules(service: OpsService, clock: SettableClock) -> None:
    """Four schedules, added and fired by the engine's own tick at the times the clock
    gives: a nightly rotation in Berlin that ran twice, a half-hourly disk report that
    failed once and then saw no tick for an hour (two fires missed, the one due now fired),
    a paused health check and a weekly report not yet due.
    The fired jobs get fixed ids as they are made (the audit trail is append-only: an id is
    never rewritten afterwards), and the schedules a fixed author."""
    from opsconsole.core import schedules as schedules_module
    from opsconsole.core.store.db import schedules

    fixed = iter(SCHEDULE_JOBS)
    made_id = schedules_module.new_job_id
    schedules_module.new_job_id = lambda: next(fixed)  # type: ignore[assignment]
    try:
        _seed_schedules(service, clock)
    finally:
        schedules_module.new_job_id = made_id  # type: ignore[assignment]
    assert next(fixed, None) is None, "every fixed id was used: the picture's story changed"
    with service.db.write() as conn:
        conn.execute(schedules.update().values(created_by="ops"))


def _seed_schedules(service: OpsService, clock: SettableClock) -> None:
    from opsconsole.core.schedules import ScheduleRequest
    from opsconsole.engine.scheduler import tick

    s = Seeder(service, clock)

    def add(when: datetime, name: str, template: str, **options: Any) -> None:
        clock.set(when)
        service.add_schedule(ScheduleRequest(name=name, template=template, **options))

    def fire(when: datetime, state: JobState | None = S.SUCCEEDED, took: float = 40) -> None:
        clock.set(when)
        tick(service, when)
        if state is None:
            return
        row = claim_store.claim(service.db, WORKER, when, service.settings.lease)
        assert row is not None and row["schedule"], row
        exit_code = 0 if state == S.SUCCEEDED else 1
        s.finish(row["id"], 1, state, when + timedelta(seconds=took), exit_code=exit_code)

    berlin = {"cron": "30 2 * * *", "tz": "Europe/Berlin"}
    add(
        at(60 * 43),
        "nightly-rotate",
        "rotate-logs",
        params={"files": ["/var/log/app.log"]},
        **berlin,
    )
    fire(datetime(2026, 4, 30, 0, 30, tzinfo=UTC))
    fire(datetime(2026, 5, 1, 0, 30, tzinfo=UTC))
    add(at(180), "disk-var", "disk-report", params={"path": "/var", "top": 5}, every="30m")
    fire(at(150))
    fire(at(120))
    fire(at(90), S.FAILED, took=12)
    clock.set(NOW)
    fire(NOW, None)  # the hour nobody ticked: 13:30 and 14:00 missed, 14:30 fired
    add(
        at(45),
        "shop-health",
        "http-check",
        params={"url": "https://shop.example.com/health"},
        every="5m",
    )
    clock.set(at(20))
    service.pause_schedule("shop-health")
    weekly = {"cron": "0 7 * * mon", "tz": "Europe/Berlin"}
    add(at(5), "weekly-report", "disk-report", params={"path": "/home"}, **weekly)
    clock.set(NOW)


# -- driving the app -------------------------------------------------------------------------


async def until(pilot: Pilot[Any], what: str, condition: Callable[[], object]) -> None:
    for _ in range(400):
        if condition():
            await pilot.pause()
            return
        await pilot.pause(0.025)
    raise SystemExit(f"screenshots: timed out waiting for {what}")


def log_loaded(app: OpsConsole, job_id: str) -> Callable[[], bool]:
    def check() -> bool:
        view = app.query_one(LogView)
        return view.job_id == job_id and bool(view.lines)

    return check


async def shoot(
    service: OpsService,
    name: str,
    size: tuple[int, int],
    drive: Callable[[OpsConsole, Pilot[Any]], Awaitable[None]],
) -> Path:
    app = OpsConsole(service, embed=False, start_feed=False)
    async with app.run_test(size=size) as pilot:
        await until(pilot, "the first load", lambda: app.ready)
        await drive(app, pilot)
        await pilot.pause()
        path = Path(app.save_screenshot(name, str(OUT)))
    return path


async def select_in_history(app: OpsConsole, pilot: Pilot[Any], job_id: str) -> None:
    """] (next pane) until History has the focus, then the cursor down to the job."""
    history = app.query_one("#history", JobTable)
    for _ in range(len(PANES)):
        if history.has_focus:
            break
        await pilot.press("right_square_bracket")
    await until(pilot, "the history pane", lambda: history.has_focus)
    await pilot.press(*["down"] * history.get_row_index(job_id))
    await until(pilot, "the job's row", lambda: history.selected_id == job_id)


async def main_screen(app: OpsConsole, pilot: Pilot[Any]) -> None:
    await until(pilot, "the log tail", log_loaded(app, MAIN_LOG_JOB))


async def log_screen(app: OpsConsole, pilot: Pilot[Any]) -> None:
    """A narrow terminal: the panes become tabs. History, the job, f: its log fills it."""
    await select_in_history(app, pilot, LONG_LOG_JOB)
    await pilot.press("f")
    await until(pilot, "the long log", log_loaded(app, LONG_LOG_JOB))
    await pilot.press("slash")  # search the log: the matches light up
    await until(pilot, "the search prompt", lambda: isinstance(app.focused, Input))
    await pilot.press(*"warn", "enter")
    await until(pilot, "the matches", lambda: bool(app.query_one(LogView).matches))


async def submit_screen(app: OpsConsole, pilot: Pilot[Any]) -> None:
    await pilot.press("s")
    await until(pilot, "the submit form", lambda: isinstance(app.screen, SubmitScreen))
    form = app.screen
    form.query_one("#template", Select).value = "deploy-app"
    await until(pilot, "the fields", lambda: bool(form.query(f"#{field_id('token')}")))
    for name, value in (("app", "shop"), ("version", "1.4.3"), ("token", "s3cr3t-token")):
        field = form.query_one(f"#{field_id(name)}", Input)
        field.focus()
        await pilot.press(*value)
    form.query_one(f"#{field_id('env')}", Select).value = "production"
    form.query_one("#run-at", Input).focus()
    await pilot.press(*"in 10m")
    form.query_one(f"#{field_id('version')}", Input).focus()
    for field in form.query(Input):
        field.cursor_blink = False  # a blinking cursor would make every run differ
    await pilot.pause(0.3)  # the form validates as you type (in a worker): let it answer


async def job_screen(app: OpsConsole, pilot: Pilot[Any]) -> None:
    await select_in_history(app, pilot, DETAIL_JOB)
    await pilot.press("enter")

    def loaded() -> bool:
        screen = app.screen
        return isinstance(screen, JobScreen) and screen.job_view is not None

    await until(pilot, "the job detail", loaded)


async def approval_screen(app: OpsConsole, pilot: Pilot[Any]) -> None:
    """The queue, the cursor on the restart awaiting approval, a: the prompt."""
    queue = app.query_one("#queue", JobTable)
    queue.focus()
    await until(pilot, "the queue", lambda: queue.has_focus)
    queue.move_cursor(row=queue.get_row_index(GATED_JOB))
    await until(pilot, "the gated job", lambda: app.selected_job() == GATED_JOB)
    await pilot.press("a")
    await until(pilot, "the prompt", lambda: isinstance(app.screen, ApprovalScreen))
    await pilot.press(*"checked CHG-1042")
    app.screen.query_one(Input).cursor_blink = False
    await pilot.pause(0.3)


async def plan_screen(app: OpsConsole, pilot: Pilot[Any]) -> None:
    """The queue, the cursor on the web_app change, a: its plan, counted and coloured."""
    queue = app.query_one("#queue", JobTable)
    queue.focus()
    await until(pilot, "the queue", lambda: queue.has_focus)
    queue.move_cursor(row=queue.get_row_index(PLAN_JOB))
    await until(pilot, "the Terraform job", lambda: app.selected_job() == PLAN_JOB)
    await pilot.press("a")
    await until(pilot, "the prompt", lambda: isinstance(app.screen, ApprovalScreen))
    await pilot.press(*"plan reviewed")
    app.screen.query_one(Input).cursor_blink = False
    await pilot.pause(0.3)


async def schedules_screen(app: OpsConsole, pilot: Pilot[Any]) -> None:
    """D: the schedules, the cursor on the half-hourly disk report: its ledger."""
    from opsconsole.tui.screens.schedules import SchedulesScreen

    await pilot.press("D")
    await until(pilot, "the schedules view", lambda: isinstance(app.screen, SchedulesScreen))
    view = app.screen
    assert isinstance(view, SchedulesScreen)
    await until(pilot, "the schedules", lambda: len(view.views) == 4)
    view.table.focus()
    view.table.move_cursor(row=view.table.get_row_index("disk-var"))

    def shown() -> bool:
        return view.detail is not None and view.detail.view.name == "disk-var"

    await until(pilot, "disk-var's ledger", shown)


def catalog_copy(home: Path) -> Path:
    """``data/`` copied, with a ``web_app`` sample written in when it has none."""
    catalog = home / "catalog"
    shutil.copytree(REPO / "data", catalog)
    if not any((catalog / "templates").glob("web_app.y*ml")):
        (catalog / "templates" / "web_app.yaml").write_text(FALLBACK_WEB_APP)
        module = catalog / "terraform" / "web_app"
        module.mkdir(parents=True, exist_ok=True)
        (module / "main.tf").write_text('resource "terraform_data" "app_server" {}\n')
    return catalog


async def hosts_screen(app: OpsConsole, pilot: Pilot[Any]) -> None:
    """The running playbook selected, H: its hosts by tasks, the cursor on db2's failure."""
    from opsconsole.tui.screens.hosts import HostsScreen

    app.select(HOSTS_JOB)
    await until(pilot, "the playbook job", lambda: app.selected_job() == HOSTS_JOB)
    await pilot.press("H")

    def drawn() -> bool:
        screen = app.screen
        return isinstance(screen, HostsScreen) and screen.loads > 0

    await until(pilot, "the hosts grid", drawn)
    table = app.screen.query_one("#hosts-table")
    await pilot.press("down", "left", "left")
    await until(pilot, "the failed cell", lambda: table.cursor_coordinate == (1, 8))


CHECK_HISTORY: dict[str, tuple[str, dict[str, Any], list[tuple[str, float | None, str]]]] = {
    "shop-http": (
        "http-check",
        {"url": "https://shop.example.com/healthz"},
        [("ok", 38.0 + (i * 7) % 23, "GET https://shop.example.com/healthz -> 200")
         for i in range(14)]
        + [("warning", 912.0, "GET https://shop.example.com/healthz -> 200 (slow: 912 ms)")],
    ),
    "db-port": (
        "tcp-check",
        {"host": "db1.internal", "port": 5432},
        [("ok", 0.8 + (i % 3) / 10, "db1.internal:5432 accepts connections") for i in range(15)],
    ),
    "root-disk": (
        "disk-check",
        {"path": "/"},
        [("ok", None, "/ is 78.2% used (21.4 GiB free)")] * 9
        + [("critical", None, "/ is 91.6% used (8.2 GiB free)")] * 6,
    ),
    "usage-limits": (
        "usage-limits",
        {"usage_file": "/srv/usage.json"},
        [("warning", None, "12 item(s) checked: team-data 86% (at 80%)")] * 15,
    ),
}  # fmt: skip
"""Checks and their last results, a minute apart (checks.svg; seeded after the others).
The http-check job of the job screen is a check too: the view shows one more."""
CHECKS_SELECTED = "shop-http"


def seed_checks(service: OpsService, clock: SettableClock) -> None:
    """Check jobs that ran and ended as a worker ends them (``jobs.finish`` records each
    check's result in the same transaction), with fixed ids: ``ck`` + check + round."""
    outcome = {"ok": S.SUCCEEDED, "warning": S.PARTIAL, "critical": S.FAILED}
    rounds = max(len(h) for _, _, h in CHECK_HISTORY.values())
    for i in range(rounds):
        when = NOW - timedelta(minutes=rounds - i)
        clock.set(when)
        for n, (name, (template, params, history)) in enumerate(CHECK_HISTORY.items()):
            status, latency, summary = history[i]
            job_id = f"ck{n}{i:03d}"
            spec = service.catalog.get(template).raw
            row = {
                "id": job_id, "template": template, "state": S.RUNNING.value, "spec": spec,
                "params": params, "attempts": 1, "schedule": name, "run_at": when,
                "created_at": when, "updated_at": when, "started_at": when,
            }  # fmt: skip
            job_store.insert(service.db, row, (), actor="scheduler", now=when)
            result = {"status": status, "summary": summary, "latency_ms": latency}
            job_store.finish(
                service.db, job_id, 1, outcome[status], when, values={"result": result}
            )
    clock.set(NOW)


async def checks_screen(app: OpsConsole, pilot: Pilot[Any]) -> None:
    """K: every check, the HTTP one selected with its results and latencies."""
    from textual.widgets import DataTable

    from opsconsole.tui.screens.checks import ChecksScreen

    await pilot.press("K")
    await until(pilot, "the checks view", lambda: isinstance(app.screen, ChecksScreen))
    screen = app.screen
    assert isinstance(screen, ChecksScreen)
    await until(pilot, "the check rows", lambda: len(screen.views) > len(CHECK_HISTORY))
    table = screen.query_one("#view-table", DataTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(CHECKS_SELECTED))
    await until(pilot, "the selected check", lambda: screen.selected == CHECKS_SELECTED)


async def run() -> list[Path]:
    OUT.mkdir(exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="opsconsole-screenshots-"))
    try:
        settings = load_settings(
            home=home,
            catalog=catalog_copy(home),
            db=f"sqlite:///{home / 'opsconsole.db'}",
            secret_key=KEY,
        )
        clock = SettableClock(NOW)
        service = open_service(settings, clock=clock)
        seed(service, clock)
        clock.set(NOW)
        service.store_description = lambda: STORE  # type: ignore[method-assign]
        shots = [
            await shoot(service, "main.svg", (160, 50), main_screen),
            await shoot(service, "log.svg", (110, 34), log_screen),
            await shoot(service, "submit.svg", (160, 50), submit_screen),
            await shoot(service, "job.svg", (160, 40), job_screen),
            await shoot(service, "approval.svg", (160, 50), approval_screen),
            await shoot(service, "plan.svg", (160, 50), plan_screen),
        ]
        # after the pictures of the main screen: the jobs the schedules fired stay out of them
        seed_schedules(service, clock)
        shots.append(await shoot(service, "schedules.svg", (160, 44), schedules_screen))
        seed_hosts(service, clock)  # after the others: their pictures stay as they were
        shots.append(await shoot(service, "hosts.svg", (120, 34), hosts_screen))
        seed_checks(service, clock)  # after the others, like the hosts
        shots.append(await shoot(service, "checks.svg", (160, 40), checks_screen))
        service.db.dispose()
        return shots
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    shots = asyncio.run(run())
    missing = []
    for path in shots:
        text = path.read_text()
        lost = [job for job in ALL_IDS[path.name] if job not in text]
        missing += [f"{path.name}: {job}" for job in lost]
        print(f"{path.relative_to(REPO)}  {len(text) // 1024} KiB")
    if missing:
        print("screenshots: job ids missing from the pictures: " + ", ".join(missing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
