"""The worker pool: slots that claim and run jobs, heartbeats, cancel, timeouts, the reaper.

Slots are threads. An idle slot sleeps on a condition that a local submit wakes at once
(the wake-up channel) and that polling wakes at the latest every ``poll_interval``. The
pool's timers (heartbeats, the reaper, the wake-up for the next due job) run on an embedded
APScheduler ``BackgroundScheduler``. ``tick(now)`` does one heartbeat and one reap by hand,
so tests drive time instead of sleeping.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from opsconsole import __version__
from opsconsole.core import wake
from opsconsole.core.catalog import template_from_dict
from opsconsole.core.errors import OpsError
from opsconsole.core.secrets import Redactor
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import jobs as job_store
from opsconsole.engine.context import RunContext, RunResult
from opsconsole.engine.logsink import LogSink
from opsconsole.engine.outcome import settle
from opsconsole.engine.reaper import reap
from opsconsole.engine.runners.base import Runner, RunSpec
from opsconsole.engine.runners.python import PythonRunner
from opsconsole.engine.runners.shell import ShellRunner

log = logging.getLogger("opsconsole.worker")
S = JobState

RUNNERS: dict[str, Callable[[], Runner]] = {"shell": ShellRunner, "python": PythonRunner}


@dataclass
class Run:
    """One attempt in progress on a slot."""

    job_id: str
    attempt: int
    ctx: RunContext
    row: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class Slot:
    index: int
    thread: threading.Thread | None = None
    run: Run | None = None
    abandoned: bool = False


class WorkerPool:
    def __init__(
        self,
        service: OpsService,
        *,
        slots: int,
        once: bool = False,
        use_scheduler: bool = True,
        install_signals: bool = False,
    ) -> None:
        if slots < 1:
            raise OpsError("a worker needs at least one slot")
        self.service = service
        self.settings = service.settings
        self.db = service.db
        self.clock = service.clock
        self.host = socket.gethostname()
        self.id = f"{self.host}:{os.getpid()}:{secrets.token_hex(2)}"
        self.once = once
        self.use_scheduler = use_scheduler
        self.install_signals = install_signals
        self._target = slots
        self._slots: list[Slot] = []
        self._lock = threading.RLock()
        self._idle = threading.Condition(threading.Lock())
        self._claiming = True
        self._stopped = threading.Event()
        """Tells slots and timers to stop."""
        self._finished = threading.Event()
        """Set when ``stop`` has recorded everything: the process may exit."""
        self._state = "running"
        self._listener: wake.Listener | None = None
        self._listen_thread: threading.Thread | None = None
        self._scheduler: Any = None
        self.outcomes: list[tuple[str, str]] = []
        """(job, final or retry state) of every attempt this pool finished."""
        self._signals = 0

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> WorkerPool:
        self.service.db.ensure_schema()
        claim_store.register_worker(
            self.db,
            self.id,
            host=self.host,
            pid=os.getpid(),
            slots=self._target,
            now=self.clock.now(),
            version=__version__,
        )
        self.reap()
        self._listener = wake.Listener(self.settings.db)
        if self._listener.sock is not None:
            self._listen_thread = threading.Thread(target=self._listen, name="wake", daemon=True)
            self._listen_thread.start()
        if self.use_scheduler:
            self._start_scheduler()
        with self._lock:
            for i in range(self._target):
                self._add_slot(i)
        return self

    def _start_scheduler(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        sched = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        hb = self.settings.heartbeat_interval
        sched.add_job(self._safe(self.heartbeat), "interval", seconds=hb, id="heartbeat")
        reap_every = max(0.5, min(self.settings.lease / 4, 15.0))
        sched.add_job(self._safe(self.reap), "interval", seconds=reap_every, id="reaper")
        sched.add_job(
            self._safe(self._check_due),
            "interval",
            seconds=max(self.settings.poll_interval, 0.1) * 5,
            id="due",
        )
        sched.start()
        self._scheduler = sched

    def _safe(self, fn: Callable[[], Any]) -> Callable[[], None]:
        def call() -> None:
            try:
                fn()
            except OpsError as exc:
                log.warning("%s: %s", getattr(fn, "__name__", "timer"), exc)
            except Exception:
                log.exception("%s failed", getattr(fn, "__name__", "timer"))

        return call

    def wake_all(self) -> None:
        with self._idle:
            self._idle.notify_all()

    def _listen(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            if self._listener.wait(0.5):
                self.wake_all()
                if self.busy():
                    self._safe(self.check_cancels)()

    def arm_wake(self, when: datetime) -> None:
        """Wake idle slots when a scheduled job or retry becomes due."""
        if self._scheduler is None:
            return
        with contextlib.suppress(Exception):
            self._scheduler.add_job(
                self.wake_all, "date", run_date=when, id="wake-next", replace_existing=True
            )

    def _check_due(self) -> None:
        nxt = claim_store.next_run_at(self.db)
        if nxt is None:
            return
        if nxt <= self.clock.now():
            self.wake_all()
        elif (nxt - self.clock.now()).total_seconds() < 3600:
            self.arm_wake(nxt)

    # -- slots -----------------------------------------------------------------------

    def _add_slot(self, index: int) -> Slot:
        slot = Slot(index)
        slot.thread = threading.Thread(
            target=self._slot_loop, args=(slot,), name=f"slot-{index}", daemon=True
        )
        self._slots.append(slot)
        slot.thread.start()
        return slot

    def busy(self) -> int:
        with self._lock:
            return sum(1 for s in self._slots if s.run is not None and not s.abandoned)

    def running_jobs(self) -> list[str]:
        """Ids of the jobs this pool runs now."""
        return [job_id for job_id, _attempt in self._runs()]

    def stop_claiming(self) -> None:
        """Let running jobs finish but take no new ones (the console's "wait for them")."""
        self._claiming = False

    @property
    def slots(self) -> int:
        return self._target

    def resize(self, n: int) -> None:
        """Add slots at once; surplus slots leave as they come free."""
        n = max(1, n)
        # the store's desired size is what heartbeats apply: keep it, or the next one undoes this
        with contextlib.suppress(OpsError):
            claim_store.resize_worker(self.db, self.id, n)
        self._apply_size(n)

    def _apply_size(self, n: int) -> None:
        with self._lock:
            self._target = max(1, n)
            live = {s.index for s in self._slots if not s.abandoned}
            for i in range(self._target):
                if i not in live:
                    self._add_slot(i)
        self.wake_all()

    def _slot_loop(self, slot: Slot) -> None:
        try:
            while not self._stopped.is_set() and self._claiming and not slot.abandoned:
                if slot.index >= self._target:
                    break
                row = claim_store.claim(self.db, self.id, self.clock.now(), self.settings.lease)
                if row is None:
                    if self.once and self.busy() == 0:
                        break
                    with self._idle:
                        self._idle.wait(self.settings.poll_interval if not self.once else 0.05)
                    continue
                self._execute(slot, dict(row))
        except Exception:
            log.exception("slot %s stopped", slot.index)
        finally:
            with self._lock:
                if slot in self._slots:
                    self._slots.remove(slot)
                last = not any(not s.abandoned for s in self._slots)
            if self.once and last:
                self._stopped.set()
            self.wake_all()

    # -- running one attempt ------------------------------------------------------------

    def _execute(self, slot: Slot, row: dict[str, Any]) -> None:
        job_id, attempt = row["id"], row["attempts"]
        try:
            tpl = template_from_dict(row["spec"])
            params = {**row["params"], **self.service.box.open(row["secret_blob"])}
        except OpsError as exc:
            self._finish(row, RunResult.failed(str(exc), kind="setup"), None)
            return
        secret_values = [params[n] for n in tpl.secret_names() if params.get(n) not in (None, "")]
        redactor = Redactor(secret_values)
        workdir = Path(tempfile.mkdtemp(prefix=f"opsconsole-{job_id}-"))
        sink = LogSink(
            self.db,
            job_id,
            attempt,
            self.clock,
            redactor,
            cap=self.settings.log_cap,
            line_max=self.settings.log_line_max,
        )

        def record_pid(pid: int) -> None:
            with contextlib.suppress(OpsError):
                job_store.set_pid(self.db, job_id, attempt, pid)

        ctx = RunContext(
            job_id=job_id,
            attempt=attempt,
            template=tpl.name,
            params=params,
            dry_run=bool(row["dry_run"]),
            workdir=workdir,
            log_fn=sink.write,
            progress_fn=sink.progress,
            pid_fn=record_pid,
        )
        run = Run(job_id, attempt, ctx, row)
        slot.run = run
        env = {
            "OPSCONSOLE_JOB_ID": job_id,
            "OPSCONSOLE_ATTEMPT": str(attempt),
            "OPSCONSOLE_WORKDIR": str(workdir),
        }
        if ctx.dry_run:
            env["OPSCONSOLE_DRY_RUN"] = "1"
        spec = RunSpec(
            template=tpl,
            timeout_s=row["timeout_s"],
            kill_grace=self.settings.kill_grace,
            line_max=self.settings.log_line_max,
            catalog_dir=Path(self.settings.catalog),
            env=env,
        )
        watchdogs: list[threading.Timer] = []
        if tpl.runner == "python" and not tpl.isolate:
            # a handler that ignores ctx.cancelled (after a cancel, a timeout or a shutdown)
            # cannot be killed: after the grace period, record it and move on
            def arm() -> None:
                timer = threading.Timer(spec.kill_grace, self._abandon, args=(slot, run))
                timer.daemon = True
                watchdogs.append(timer)
                if not run.done.is_set():
                    timer.start()

            ctx.stop.on_set(arm)
        try:
            runner = RUNNERS.get(tpl.runner)
            if runner is None:
                result = RunResult.failed(f"runner '{tpl.runner}' is not available", kind="setup")
            else:
                result = runner().run(spec, ctx)
        except Exception as exc:
            log.exception("job %s crashed its runner", job_id)
            result = RunResult.failed(
                f"internal error: {type(exc).__name__}: {exc}", kind="internal"
            )
        finally:
            with self._lock:  # against _abandon: exactly one of us records this attempt
                run.done.set()
            for timer in watchdogs:
                timer.cancel()
            sink.close()
            shutil.rmtree(workdir, ignore_errors=True)
        if not slot.abandoned and not sink.fenced:
            self._finish(row, result, redactor)
        slot.run = None

    def _abandon(self, slot: Slot, run: Run) -> None:
        with self._lock:
            if run.done.is_set() or slot.run is not run or slot.abandoned:
                return
            slot.abandoned = True
            if slot in self._slots:
                self._slots.remove(slot)
        grace = self.settings.kill_grace
        reason = run.ctx.stop.reason or "interrupted"
        what = run.ctx.stop.message or reason.replace("_", " ")
        self._finish(
            run.row,
            RunResult(
                outcome=reason,
                error={
                    "message": f"{what}; the handler ignored cancellation for {grace:g}s and "
                    "was abandoned",
                    "kind": reason,
                    "detail": None,
                },
            ),
            None,
        )
        if not self._stopped.is_set() and self._claiming:
            with self._lock:
                self._add_slot(slot.index)

    def _finish(self, row: dict[str, Any], result: RunResult, redactor: Redactor | None) -> None:
        """Record how an attempt ended (the policy is ``outcome.settle``); fenced by attempt."""
        now = self.clock.now()
        end = settle(row, result, redactor or Redactor(), now)
        if end is None:  # lost: the store gave the job to someone else; write nothing
            return
        try:
            out = job_store.finish(
                self.db,
                row["id"],
                row["attempts"],
                end.state,
                now,
                values=end.values,
                kind=end.kind,
                message=end.message,
                actor=self.id,
            )
        except OpsError as exc:
            log.error("job %s: cannot record its end: %s", row["id"], exc)
            return
        if out is None:
            return
        self.outcomes.append((row["id"], end.state.value))
        if end.state == S.SCHEDULED:
            self.arm_wake(end.values["run_at"])
        self.wake_all()  # dependents may have been released

    # -- heartbeats, cancel, reaper -------------------------------------------------------

    def _runs(self) -> dict[tuple[str, int], Run]:
        with self._lock:
            return {(s.run.job_id, s.run.attempt): s.run for s in self._slots if s.run is not None}

    def heartbeat(self, now: datetime | None = None) -> None:
        runs = self._runs()
        reply = claim_store.heartbeat(
            self.db,
            self.id,
            now or self.clock.now(),
            lease_s=self.settings.lease,
            slots=self._target,
            busy=len(runs),
            state=self._state,
            running=list(runs),
        )
        for job_id, attempt, reason in reply.cancel:
            run = runs.get((job_id, attempt))
            if run is not None:
                run.ctx.stop.set("cancelled", reason)
        for key in reply.lost:
            runs[key].ctx.stop.set("lost", "the store gave this job to another worker")
        if reply.desired_slots != self._target and self._claiming:
            self._apply_size(reply.desired_slots)

    def check_cancels(self) -> None:
        runs = self._runs()
        if not runs:
            return
        for job_id, attempt, reason in claim_store.cancel_requests(self.db, self.id):
            run = runs.get((job_id, attempt))
            if run is not None:
                run.ctx.stop.set("cancelled", reason)

    def reap(self, now: datetime | None = None) -> int:
        """Settle jobs whose worker vanished (see ``reaper.reap``)."""
        return reap(self, now or self.clock.now())

    def tick(self, now: datetime | None = None) -> None:
        """One heartbeat and one reap at ``now``: the pool's timers, by hand."""
        self.heartbeat(now)
        self.reap(now)

    # -- stopping ----------------------------------------------------------------------

    def drain(self, grace: float | None = None) -> None:
        """Stop claiming, let running jobs finish within ``grace``, then stop and record them."""
        grace = self.settings.drain_grace if grace is None else grace
        self._claiming = False
        self._state = "draining"
        self.wake_all()
        with contextlib.suppress(OpsError):
            claim_store.set_worker_state(self.db, self.id, "draining", self.clock.now())
        deadline = time.monotonic() + grace
        while self._runs() and time.monotonic() < deadline and not self._stopped.is_set():
            time.sleep(0.05)
        self.stop()

    def stop(self, grace: float | None = None) -> None:
        """Stop now: running jobs are stopped (TERM, then KILL) and recorded as interrupted."""
        self._claiming = False
        deadline = time.monotonic() + (self.settings.kill_grace if grace is None else grace) + 5
        while (runs := self._runs()) and time.monotonic() < deadline:
            # again each round: a slot may have claimed a job just as claiming stopped
            for run in runs.values():
                run.ctx.stop.set("interrupted", "the worker shut down")
            time.sleep(0.02)
        for key, run in self._runs().items():  # handlers that ignored the stop
            self._finish(
                run.row,
                RunResult(
                    outcome="interrupted",
                    error={
                        "message": "the worker shut down",
                        "kind": "interrupted",
                        "detail": None,
                    },
                ),
                None,
            )
            del key
        self._stopped.set()
        self.wake_all()
        if self._scheduler is not None:
            with contextlib.suppress(Exception):
                self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._listen_thread is not None:
            # closing the socket under a select() in progress would crash the listen thread:
            # poke it awake (it sees _stopped) and let it end first
            wake.notify(self.settings.db)
            self._listen_thread.join(timeout=2)
        if self._listener is not None:
            self._listener.close()
        self._state = "stopped"
        with contextlib.suppress(OpsError):
            claim_store.set_worker_state(self.db, self.id, "stopped", self.clock.now())
        # last: run_forever returns (and the process may exit) once this is set
        self._finished.set()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def run_forever(self) -> None:
        """Run until SIGTERM/SIGINT: the first drains, a second stops at once."""

        def on_signal(signum: int, _frame: Any) -> None:
            self._signals += 1
            if self._signals == 1:
                log.warning("draining (signal %s): send it again to stop at once", signum)
                threading.Thread(target=self.drain, name="drain", daemon=True).start()
            else:
                threading.Thread(
                    target=self.stop, kwargs={"grace": 0.5}, name="stop", daemon=True
                ).start()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not self._finished.wait(0.5):
            pass

    def run_once(self) -> bool:
        """Run every job that is ready now; True if all of them succeeded."""
        self._stopped.wait()
        self.stop(grace=0)
        return all(state == S.SUCCEEDED.value for _, state in self.outcomes)
