"""The worker pool: one claimer feeding slot threads, heartbeats, the reaper, stopping.

One claimer per pool takes work for free slots: idle slots never touch the store (sixteen
idle slots cost one read per poll, not sixteen write transactions). The claimer sleeps on a
condition that a submit wakes at once (SQLite: the local wake-up channel; PostgreSQL: the
store's notifications, from any host) and that polling wakes at the latest every
``poll_interval``. Every loop survives store errors. A store that is away is one outage for
the whole pool (``engine/outage.py``): said once, every loop retrying on one backoff, no
claims meanwhile, running jobs left to run (their log and end are written once it is back),
and no reaping until workers had a lease's time to heartbeat again. Other problems are said
in ``problem`` (which the heartbeat writes to the worker's row, for ``workers list``,
``health`` and the console).
A slot thread that dies is replaced. The timers (heartbeats, the reaper, the wake-up for the
next due job) run on an embedded APScheduler ``BackgroundScheduler``; ``tick(now)`` does
one heartbeat and one reap by hand, so tests drive time instead of sleeping.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from opsconsole import __version__
from opsconsole.core import hostid, wake
from opsconsole.core.errors import OpsError, StoreUnavailable
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import notify
from opsconsole.core.storeclock import StoreClock
from opsconsole.core.text import duration
from opsconsole.engine import maintenance, scheduler, supervise, webhooks
from opsconsole.engine.attempt import AttemptEnv, Run, execute
from opsconsole.engine.context import RunResult
from opsconsole.engine.outage import Outage
from opsconsole.engine.outcome import Settlement
from opsconsole.engine.reaper import Reaper
from opsconsole.engine.recorder import SPOOL, Recorder
from opsconsole.engine.runners import zygote
from opsconsole.engine.runners.python import interrupt_thread

log = logging.getLogger("opsconsole.worker")
S = JobState

BACKOFF_AFTER_ERROR = 1.0
"""Seconds the claimer waits after an error that is not the store being away."""
SLOT_DEATHS_WINDOW = 60.0
"""Seconds over which slot threads that keep dying make the pool unhealthy."""
RECENT_OUTCOMES = 1000
_live_pools: set[str] = set()
"""Pools running in this process: the last one to stop shuts the shared handler host down."""
_live_lock = threading.Lock()
PRUNE_EVERY = 600.0
"""Seconds between two passes that forget long-gone workers."""


@dataclass
class Slot:
    index: int
    thread: threading.Thread | None = None
    run: Run | None = None
    """The attempt handed to this slot (claimed, maybe not started yet), if any."""
    wake: threading.Event = field(default_factory=threading.Event)
    abandoned: bool = False
    retired: bool = False
    reserved: bool = False
    """Picked by the claimer for the job it is claiming: the slot must not retire meanwhile."""


class _Problems:
    """What keeps the pool from working, by source; ``None`` clears a source."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_source: dict[str, str] = {}

    def set(self, source: str, message: str | None) -> bool:
        """Record (or clear) a source's problem; True if that changed anything."""
        with self._lock:
            old = self._by_source.get(source)
            if message is None:
                self._by_source.pop(source, None)
            else:
                self._by_source[source] = message
            return old != message

    def all(self) -> list[str]:
        with self._lock:
            return list(self._by_source.values())


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
        self._team_caps = self.settings.policy.team_caps()
        """Team -> max running jobs, from the settings (fixed for the life of the pool)."""
        self.db = service.db
        self.clock = StoreClock(service.clock)
        """The store's time (this machine's clock corrected at each heartbeat)."""
        self.host = hostid.host_name()
        self.host_id = hostid.host_id()
        """This machine, stable across container hostnames: what the reaper goes by."""
        self.id = f"{self.host}:{os.getpid()}:{secrets.token_hex(2)}"
        self.once = once
        self.use_scheduler = use_scheduler
        self.install_signals = install_signals
        self._target = slots
        self._slots: list[Slot] = []
        self._lock = threading.RLock()
        self._cond = threading.Condition(threading.Lock())
        self._poked = False
        self._claiming = True
        self._stopping = threading.Event()
        """Tells the claimer, slots and timers to stop; running jobs are being stopped."""
        self._finished = threading.Event()
        """Set when ``stop`` has recorded everything: the process may exit."""
        self._once_done = threading.Event()
        self._state = "running"
        self._listener: wake.Listener | None = None
        self._unsubscribe: Callable[[], None] | None = None
        """Ends this pool's subscription to the store's notifications (PostgreSQL)."""
        self._cancel_check = threading.Event()
        self._threads: list[threading.Thread] = []
        self._scheduler: Any = None
        self._problems = _Problems()
        self.outage = Outage()
        """Whether the store answers this pool: every loop reports to it and backs off on it."""
        self._slot_deaths: deque[float] = deque(maxlen=16)
        self._abandoned: list[tuple[threading.Thread, float]] = []
        """Threads of handlers that ignored their stop, and when they were abandoned."""
        self._timer_failures: dict[str, float] = {}
        self._last_prune: float | None = None
        self.fatal: str | None = None
        """Set when this pool must not go on (its store file was replaced): it stops."""
        self.outcomes: deque[tuple[str, str]] = deque(maxlen=RECENT_OUTCOMES)
        """(job, final or retry state) of the attempts this pool finished most recently."""
        self.counts: Counter[str] = Counter()
        """How many attempts this pool ended in each state."""
        self._signals = 0
        self._serial: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.db.dialect == "sqlite" else contextlib.nullcontext()
        )
        """Held around the claimer's and the recorder's writes on SQLite: its one writer is
        taken in turns here, at once, instead of through SQLite's busy handler (which
        sleeps a millisecond or more each time a thread finds the lock taken)."""
        self._freed = False
        """A slot came free (or a job may be ready) since the claimer last looked."""
        self.recorder = Recorder(
            self.db,
            self.clock,
            self.id,
            max_interruptions=self.settings.max_interruptions,
            stopping=self._stopping,
            patience=max(self.settings.drain_grace, 1.0),
            spool=Path(self.settings.home) / SPOOL,
            serial=self._serial,
        )
        self.reaper = Reaper(
            self.db, self.settings, self.id, self.host_id, self._held, self.recorder
        )
        self._env = AttemptEnv(
            db=self.db,
            settings=self.settings,
            clock=self.clock,
            box=lambda: self.service.box,
            stopping=self._stopping,
            abandon=self._abandon,
            refusal=self.service.catalog_refusal,
            gate=self.service.gate_refusal,
        )

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> WorkerPool:
        self.db.ensure_schema()
        try:
            supervise.configure(self.settings.supervision)
            supervision = supervise.mechanism()
        except supervise.SupervisionError as exc:
            raise OpsError(str(exc)) from None
        log.info("job processes: %s", supervise.detect().reason)
        sent = self.clock.base.now()
        self.clock.learn(claim_store.store_now(self.db), sent, self.clock.base.now())
        if self.clock.skew_problem():
            log.warning("%s", self.clock.skew_problem())
        claim_store.register_worker(
            self.db,
            self.id,
            host=self.host,
            host_id=self.host_id,
            pid=os.getpid(),
            slots=self._target,
            now=self.clock.now(),
            version=__version__,
            supervision=supervision,
        )
        self.recorder.replay()  # before the reaper judges the jobs those ends belong to
        self.reap()
        if self.db.dialect == "sqlite":
            self._listener = wake.Listener(self.settings.db)
            if self._listener.sock is not None:
                self._spawn(self._listen, "wake")
        else:  # every host's workers hear each commit (NOTIFY), not just this host's
            self._unsubscribe = notify.subscribe(self.db, self._on_change)
            self._spawn(self._watch_cancels, "cancels")
            # a started pool hears the next commit; if it cannot, the listener said why
            notify.wait_connected(self.db, notify.CONNECT_TIMEOUT)
        if self.use_scheduler:
            self._start_scheduler()
        with self._lock:
            for i in range(self._target):
                self._add_slot(i)
        self._spawn(self._claim_loop, "claimer")
        with _live_lock:
            _live_pools.add(self.id)
        return self

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _start_scheduler(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        _quiet_skips()
        sched = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        hb = self.settings.heartbeat_interval
        sched.add_job(
            self._safe(self.heartbeat, probe=True), "interval", seconds=hb, id="heartbeat"
        )
        reap_every = max(0.5, min(self.settings.lease / 4, 15.0))
        sched.add_job(
            self._safe(self.reap, probe=True), "interval", seconds=reap_every, id="reaper"
        )
        sched.add_job(
            self._safe(self._check_due, probe=True),
            "interval",
            seconds=max(self.settings.poll_interval, 0.1) * 5,
            id="due",
        )
        # the store's recurring duties: each is safe to run in several processes at once
        # (a schedule's fire and a webhook's cursor are claimed by guarded writes)
        tick_every = max(min(self.settings.poll_interval, 1.0), 0.1)
        sched.add_job(self._safe(self.tick_schedules), "interval", seconds=tick_every, id="fires")
        sched.add_job(
            self._safe(self.dispatch_webhooks), "interval", seconds=tick_every, id="webhooks"
        )
        sched.add_job(self._safe(self.maintain), "interval", seconds=60, id="maintenance")
        sched.start()
        self._scheduler = sched

    def _safe(self, fn: Callable[[], Any], *, probe: bool = False) -> Callable[[], None]:
        """A timer that never dies and never floods the log: one line per outage and recovery.

        While the store is away the timer waits for the outage's backoff instead of trying
        at its own interval; the outage itself is said once (``Outage``), not per timer.
        Only a ``probe`` (a timer that calls the store every time it runs) may say that the
        store is back: the others can return without touching it.
        """
        name = getattr(fn, "__name__", "timer")

        def call() -> None:
            if not self.outage.due():
                return
            try:
                with self._reporting(self.clock.now(), probe=probe):
                    fn()
            except StoreUnavailable as exc:
                if not self._away(exc):  # a statement refused, not an outage: this timer's
                    self._timer_failed(name, exc)
                return
            except Exception as exc:
                self._timer_failed(name, exc)
                return
            if self._timer_failures.pop(name, None) is not None:
                log.warning("%s works again", name)

        return call

    def _timer_failed(self, name: str, exc: Exception) -> None:
        """Say a timer's failure at most once a minute (it retries at its next tick)."""
        first = name not in self._timer_failures
        last = self._timer_failures.get(name, 0.0)
        if first or time.monotonic() - last > 60:
            self._timer_failures[name] = time.monotonic()
            if isinstance(exc, OpsError):
                log.warning("%s failed (retrying): %s", name, exc)
            else:
                log.error("%s failed (retrying)", name, exc_info=exc)

    def _away(self, exc: StoreUnavailable) -> bool:
        """Is this failure the store being away (an outage), not one statement refused?

        The store says which (``StoreUnavailable.away``: a server that does not answer, a
        SQLite lock held past the busy timeout). For the pool's own loops any other failure
        of a SQLite store (a full disk, an I/O error) is an outage too: every loop meets it
        alike, and backs off until someone frees the disk. A claimed job's own work waits
        only on ``away`` (``outage.wait_out``), and fails on a refusal.
        """
        return exc.away or self.db.dialect == "sqlite"

    @contextlib.contextmanager
    def _reporting(self, now: datetime, *, probe: bool = True) -> Iterator[None]:
        """Tell ``self.outage`` how a call to the store went (it re-raises the failure).

        Any loop's failure can begin an outage; only a ``probe`` (a call that always reaches
        the store) can end one.
        """
        try:
            yield
        except StoreUnavailable as exc:
            if self._away(exc):
                self.outage.failed(str(exc))
            raise
        if probe:
            self.outage.worked(now)

    def wake_all(self) -> None:
        """Wake the claimer: a job is ready (a submit, a due time); it claims at once."""
        with self._cond:
            self._poked = True
            self._cond.notify_all()

    def _nudge(self) -> None:
        """Wake the claimer: a slot came free, a job may be ready; it looks with a read first.

        Remembered until the claimer next waits, so a nudge while it is busy claiming is not
        lost (it would sleep a whole poll interval with a slot free).
        """
        with self._cond:
            self._freed = True
            self._cond.notify_all()

    def _listen(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            if self._listener.wait(0.5):
                self.wake_all()
                if self.busy():
                    self._safe(self.check_cancels)()

    def _on_change(self, change: notify.Change) -> None:
        """A transaction committed on the store (on the listener's thread: only wake up)."""
        if change.ready:
            self.wake_all()
        elif change.ended:
            self._nudge()
        if change.cancel and self.busy():
            self._cancel_check.set()

    def _watch_cancels(self) -> None:
        """Read the cancel requests when a notification says there is one (off the listener's
        thread, which must not wait on the store)."""
        while not self._stopping.is_set():
            if self._cancel_check.wait(0.5):
                self._cancel_check.clear()
                self._safe(self.check_cancels)()

    def arm_wake(self, when: datetime) -> None:
        """Wake the claimer when a scheduled job or retry becomes due."""
        if self._scheduler is None:
            return
        try:
            self._scheduler.add_job(
                self.wake_all, "date", run_date=when, id="wake-next", replace_existing=True
            )
        except Exception:  # the scheduler is shutting down; polling still finds the job
            log.debug("cannot arm a wake-up", exc_info=True)

    def _check_due(self) -> None:
        nxt = claim_store.next_run_at(self.db)
        if nxt is None:
            return
        if nxt <= self.clock.now():
            self.wake_all()
        elif (nxt - self.clock.now()).total_seconds() < 3600:
            self.arm_wake(nxt)

    # -- the claimer -------------------------------------------------------------------

    def _claim_loop(self) -> None:
        """Claim work for free slots until the pool stops; never ends on an error.

        While the store is away nothing is claimed: the claimer waits for the outage's
        backoff, then looks with a read before it claims again, so a store that comes back
        is not met by a burst of write transactions from every idle slot.
        """
        probe = True  # a read first: most pools start with nothing to do
        failing = False
        while not self._stopping.is_set():
            try:
                self._tend_slots()
                if not self.outage.due():
                    self._stopping.wait(max(self.outage.wait_time(), 0.01))
                    continue
                slots = self._free_slots() if self._claiming else []
                if not slots:
                    self._wait(self.settings.poll_interval)
                    continue
                now = self.clock.now()
                rows: list[Any] = []
                try:
                    with self._reporting(now):
                        if not probe or claim_store.any_ready(
                            self.db, now, team_caps=self._team_caps
                        ):
                            rows = self._claim(now, len(slots))
                finally:
                    for slot in slots[len(rows) :]:
                        self._unreserve(slot)
                if failing:
                    failing = False
                    log.warning("claiming works again")
                self._problems.set("claim", None)
                for slot, row in zip(slots, rows, strict=False):
                    self._hand(slot, dict(row))
                if not rows:
                    if self.once and self.busy() == 0:
                        self._once_done.set()
                        self._wait(0.05)
                    else:
                        probe = not self._wait(self.settings.poll_interval)
                    continue
                probe = False
            except StoreUnavailable as exc:  # an outage is said once, by ``self.outage``
                message = f"cannot claim jobs: {exc}"
                changed = self._problems.set("claim", message)
                probe = True
                if not self._away(exc):  # a refused statement: this loop's own failure
                    if changed:
                        log.error("%s (retrying)", message)
                    failing = True
                    self._stopping.wait(BACKOFF_AFTER_ERROR)
            except Exception as exc:  # reported and retried: the claimer must never end
                message = f"cannot claim jobs: internal error: {type(exc).__name__}: {exc}"
                if self._problems.set("claim", message):
                    log.exception("%s (retrying)", message)
                failing = True
                self._stopping.wait(BACKOFF_AFTER_ERROR)
                probe = False

    def _wait(self, timeout: float) -> bool:
        """Sleep until poked or ``timeout``; True if poked (something may be ready)."""
        with self._cond:
            if not self._poked and not self._freed:
                self._cond.wait(timeout)
            poked, self._poked, self._freed = self._poked, False, False
            return poked

    def _claim(self, now: datetime, n: int) -> list[Any]:
        """Claim up to ``n`` jobs, best first: several free slots cost one transaction."""
        with self._serial:
            if n == 1:
                row = claim_store.claim(
                    self.db, self.id, now, self.settings.lease, team_caps=self._team_caps
                )
                return [] if row is None else [row]
            rows = claim_store.claim_many(
                self.db, self.id, now, self.settings.lease, n, team_caps=self._team_caps
            )
            if rows or self.db.dialect != "postgresql":
                return list(rows)
            # every pick refused (a key or team filled by a claim committed meanwhile):
            # the one-job claim moves on to the next candidates before saying "nothing"
            row = claim_store.claim(
                self.db, self.id, now, self.settings.lease, team_caps=self._team_caps
            )
            return [] if row is None else [row]

    def _free_slots(self) -> list[Slot]:
        """Reserve every free slot for the claim about to be made."""
        free: list[Slot] = []
        with self._lock:
            for slot in self._slots:
                if (
                    slot.run is None
                    and not slot.abandoned
                    and not slot.retired
                    and slot.index < self._target
                    and not slot.reserved
                    and slot.thread is not None
                    and slot.thread.is_alive()
                ):
                    slot.reserved = True
                    free.append(slot)
        return free

    def _unreserve(self, slot: Slot) -> None:
        with self._lock:
            slot.reserved = False
        slot.wake.set()

    def _hand(self, slot: Slot, row: dict[str, Any]) -> None:
        run = Run(row["id"], row["attempts"], row)
        with self._lock:
            slot.run = run
            slot.reserved = False
        slot.wake.set()

    # -- slots -------------------------------------------------------------------------

    def _add_slot(self, index: int) -> Slot:
        slot = Slot(index)
        slot.thread = threading.Thread(
            target=self._slot_loop, args=(slot,), name=f"slot-{index}", daemon=True
        )
        self._slots.append(slot)
        slot.thread.start()
        return slot

    def _tend_slots(self) -> None:
        """Replace slot threads that died: a slot must never stop silently."""
        with self._lock:
            dead = [
                s
                for s in self._slots
                if s.thread is not None and not s.thread.is_alive() and not s.retired
            ]
            for slot in dead:
                self._slots.remove(slot)
                self._slot_deaths.append(time.monotonic())
                log.error("slot %s died; starting a new one", slot.index)
                if not self._stopping.is_set() and not slot.abandoned:
                    self._add_slot(slot.index)
        recent = [t for t in self._slot_deaths if time.monotonic() - t < SLOT_DEATHS_WINDOW]
        self._problems.set(
            "slots",
            f"{len(recent)} slot threads died in the last minute" if len(recent) >= 3 else None,
        )

    def _slot_loop(self, slot: Slot) -> None:
        try:
            while True:
                slot.wake.wait(1.0)
                slot.wake.clear()
                with self._lock:
                    run = slot.run
                    if run is None:
                        if slot.reserved:
                            continue
                        if self._stopping.is_set() or slot.index >= self._target:
                            slot.retired = True
                            if slot in self._slots:
                                self._slots.remove(slot)
                            return
                        continue
                self._run(slot, run)
                with self._lock:
                    slot.run = None
                if slot.abandoned:
                    return
                self._nudge()
        except BaseException:
            if slot.abandoned:
                return  # an abandoned handler's thread, interrupted: it may end
            log.exception("slot %s stopped", slot.index)
        finally:
            self._nudge()

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
        try:
            claim_store.resize_worker(self.db, self.id, n)
        except OpsError as exc:
            log.warning("resize: %s", exc)
        self._apply_size(n)

    def _apply_size(self, n: int) -> None:
        with self._lock:
            self._target = max(1, n)
            live = {s.index for s in self._slots if not s.abandoned and not s.retired}
            for i in range(self._target):
                if i not in live:
                    self._add_slot(i)
            for slot in self._slots:
                slot.wake.set()  # surplus slots retire when free
        self.wake_all()

    # -- running one attempt ------------------------------------------------------------

    def _run(self, slot: Slot, run: Run) -> None:
        log.info(
            "job %s (%s) started: attempt %d on slot %d",
            run.job_id,
            run.row["template"],
            run.attempt,
            slot.index,
        )
        result = execute(self._env, run)
        if run.finish():  # not abandoned meanwhile
            fenced = run.sink is not None and run.sink.fenced
            if not fenced:
                self.record(run.row, result, run)

    def record(self, row: dict[str, Any], result: RunResult, run: Run | None = None) -> None:
        """Record how an attempt ended (the policy is ``outcome.settle``); fenced by attempt."""
        end = self.recorder.record(row, result, run.redactor if run is not None else None)
        if end is None:
            return
        log_end(row, result, end, None if run is None else time.monotonic() - run.started)
        self.outcomes.append((row["id"], end.state.value))
        self.counts[end.state.value] += 1
        if end.state == S.SCHEDULED:
            self.arm_wake(end.values["run_at"])
        self._nudge()  # dependents may have been released

    def _abandon(self, run: Run) -> None:
        """An in-thread handler ignored its stop for the grace period: record it, move on."""
        if not run.abandon():
            return
        with self._lock:
            slot = next((s for s in self._slots if s.run is run), None)
            if slot is not None:
                slot.abandoned = True
                self._slots.remove(slot)
                if not self._stopping.is_set():
                    self._add_slot(slot.index)
            if run.thread is not None:
                self._abandoned.append((run.thread, time.monotonic()))
        stop = run.ctx.stop if run.ctx is not None else None
        reason = (stop.reason if stop else None) or "interrupted"
        what = (stop.message if stop else "") or reason.replace("_", " ")
        grace = self.settings.kill_grace
        log.error(
            "job %s: its handler ignored cancellation for %gs; abandoning its thread",
            run.job_id,
            grace,
        )
        self.record(
            run.row,
            RunResult.stopped(
                reason,
                f"{what}; the handler ignored cancellation for {grace:g}s and was abandoned",
            ),
            run,
        )
        if run.thread is not None and interrupt_thread(run.thread):
            log.warning("job %s: interrupting its abandoned handler thread", run.job_id)
        self.wake_all()

    def stuck_threads(self, older_than: float = 0.0) -> int:
        """Abandoned handler threads still alive ``older_than`` seconds after abandonment.

        An interrupted pure-Python loop ends; a thread blocked in C (or catching
        BaseException) does not, and keeps its resources for the life of the process.
        """
        now = time.monotonic()
        with self._lock:
            self._abandoned = [(t, since) for t, since in self._abandoned if t.is_alive()]
            return sum(1 for _t, since in self._abandoned if now - since >= older_than)

    # -- heartbeats, cancel, reaper, health ------------------------------------------------

    def _runs(self) -> dict[tuple[str, int], Run]:
        with self._lock:
            return {
                (s.run.job_id, s.run.attempt): s.run
                for s in self._slots
                if s.run is not None and not s.abandoned
            }

    def _held(self) -> set[tuple[str, int]]:
        return set(self._runs())

    def problem(self, *, outage: bool = True) -> str | None:
        """Why this pool cannot work as it should right now; None when it can.

        ``outage=False`` leaves the store's outage out: what a heartbeat writes, since a row
        written once the store is back must not say that it is away.
        """
        parts = self._problems.all()
        away = self.outage.problem if outage else None
        if away:
            parts.insert(0, away)
        skew = self.clock.skew_problem()
        if skew:
            parts.append(skew)
        if self.fatal:
            parts.insert(0, self.fatal)
        for run in self._runs().values():
            sink_problem = run.sink.problem if run.sink is not None else None
            if sink_problem:
                parts.append(f"job {run.job_id}: its log is not landing: {sink_problem}")
        if self._unsubscribe is not None:
            listening = notify.problem(self.db)
            if listening:
                parts.append(listening)
        recording = self.recorder.problem
        if recording:
            parts.append(recording)
        stuck = self.stuck_threads()
        if stuck:
            parts.append(
                f"{stuck} abandoned handler thread(s) still running (they ignored cancellation)"
            )
        return "; ".join(parts)[:2000] if parts else None

    def heartbeat(self, now: datetime | None = None) -> None:
        self._check_store_file()
        runs = self._runs()
        sent = self.clock.base.now()
        reply = claim_store.heartbeat(
            self.db,
            self.id,
            now or self.clock.now(),
            lease_s=self.settings.lease,
            slots=self._target,
            busy=len(runs),
            state=self._state,
            running=list(runs),
            problem=self.problem(outage=False),
        )
        self.clock.learn(reply.store_now, sent, self.clock.base.now())
        for job_id, attempt, reason in reply.cancel:
            run = runs.get((job_id, attempt))
            if run is not None:
                run.stop.set("cancelled", reason)
        for key in reply.lost:
            runs[key].stop.set("lost", "the store gave this job to another worker")
        if reply.desired_slots != self._target and self._claiming:
            self._apply_size(reply.desired_slots)

    def _check_store_file(self) -> None:
        """A SQLite file removed or replaced under a running worker: stop, loudly."""
        if self.fatal:
            return
        try:
            self.db.check_file()
        except StoreUnavailable as exc:
            self.fatal = f"{exc}: this worker no longer claims jobs (restart it)"
            self._claiming = False
            log.error("%s", self.fatal)

    def check_cancels(self) -> None:
        runs = self._runs()
        if not runs:
            return
        for job_id, attempt, reason in claim_store.cancel_requests(self.db, self.id):
            run = runs.get((job_id, attempt))
            if run is not None:
                run.stop.set("cancelled", reason)

    def reap(self, now: datetime | None = None) -> int:
        """Settle jobs no live worker holds (see ``reaper.Reaper``)."""
        now = now or self.clock.now()
        settled = 0
        # after an outage every heartbeat is old: judge them once the workers had a lease's
        # time to heartbeat again, or live workers' jobs would be requeued under them
        if self.outage.steady(now, self.settings.lease):
            settled = self.reaper.reap(now)
        expired = self.service.expire_approvals(now)
        if expired:
            log.info("approval requests expired: %s", ", ".join(expired))
        if self._last_prune is None or time.monotonic() - self._last_prune > PRUNE_EVERY:
            self._last_prune = time.monotonic()
            self.reaper.prune(now)
        if settled:
            self.wake_all()
        return settled

    def tick_schedules(self, now: datetime | None = None) -> None:
        """Fire the schedules due at ``now`` (see ``engine/scheduler.py``)."""
        scheduler.tick(self.service, now or self.clock.now())

    def dispatch_webhooks(self, now: datetime | None = None) -> None:
        """Queue the deliveries of new events (see ``engine/webhooks.py``)."""
        webhooks.dispatch(self.service, now or self.clock.now())

    def maintain(self, now: datetime | None = None) -> None:
        """Prune what retention allows (see ``engine/maintenance.py``)."""
        maintenance.maintain(self.service, now or self.clock.now())

    def tick(self, now: datetime | None = None) -> None:
        """One heartbeat and one reap at ``now``: the pool's timers, by hand (a store error
        is raised, and counted in ``outage`` as the timers count it)."""
        now = now or self.clock.now()
        with self._reporting(now):
            self.heartbeat(now)
            self.reap(now)

    # -- stopping ----------------------------------------------------------------------

    def drain(self, grace: float | None = None) -> None:
        """Stop claiming, let running jobs finish within ``grace``, then stop and record them."""
        grace = self.settings.drain_grace if grace is None else grace
        self._claiming = False
        self._state = "draining"
        self.wake_all()
        try:
            claim_store.set_worker_state(self.db, self.id, "draining", self.clock.now())
        except OpsError as exc:
            log.warning("cannot record draining: %s", exc)
        deadline = time.monotonic() + grace
        while self._runs() and time.monotonic() < deadline and not self._stopping.is_set():
            time.sleep(0.05)
        self.stop()

    def stop(self, grace: float | None = None) -> None:
        """Stop now: running jobs are stopped (TERM, then KILL) and recorded as interrupted."""
        self._claiming = False
        self._stopping.set()
        self.wake_all()
        with self._lock:
            for slot in self._slots:
                slot.wake.set()
        deadline = time.monotonic() + (self.settings.kill_grace if grace is None else grace) + 5
        while (runs := self._runs()) and time.monotonic() < deadline:
            for run in runs.values():
                run.stop.set("interrupted", "the worker shut down")
            time.sleep(0.02)
        for run in self._runs().values():  # handlers that ignored the stop
            if run.abandon():
                self.record(
                    run.row,
                    RunResult.stopped("interrupted", "the worker shut down"),
                    run,
                )
        if self._scheduler is not None:
            try:
                self._scheduler.shutdown(wait=False)
            except Exception:
                log.warning("the pool's timers did not shut down cleanly", exc_info=True)
            self._scheduler = None
        if self._listener is not None:
            # closing the socket under a select() in progress would crash the listen thread:
            # poke it awake (it sees the stop) and let it end first
            wake.notify(self.settings.db)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for thread in self._threads:
            thread.join(timeout=2)
        with _live_lock:
            _live_pools.discard(self.id)
            last = not _live_pools
        if last:
            zygote.shutdown()
        if self._listener is not None:
            self._listener.close()
        self._state = "stopped"
        try:
            claim_store.set_worker_state(self.db, self.id, "stopped", self.clock.now())
        except OpsError as exc:
            log.warning("cannot record that this worker stopped: %s", exc)
        # last: run_forever returns (and the process may exit) once this is set
        self._finished.set()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def run_forever(self) -> None:
        """Run until SIGTERM/SIGINT: the first drains, a second stops at once.

        Raises StoreUnavailable after stopping when the store file was replaced under it.
        """

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
        draining = replace = False
        while not self._finished.wait(0.5):
            if draining:
                continue
            if self.fatal:
                draining = True
            elif self.stuck_threads(older_than=2 * self.settings.kill_grace + 1):
                # threads that cannot be stopped keep their CPU and memory for the life of
                # the process: finish the other jobs, then start afresh in place
                log.error(
                    "%d abandoned handler thread(s) cannot be stopped: draining, then "
                    "replacing this worker process",
                    self.stuck_threads(),
                )
                draining = replace = True
            if draining:
                threading.Thread(target=self.drain, name="drain", daemon=True).start()
        if self.fatal:
            raise StoreUnavailable(self.fatal)
        if replace and self._signals == 0:
            argv = reexec_argv()
            log.warning("replacing this worker process: %s", " ".join(argv[:3]))
            logging.shutdown()
            os.execv(argv[0], argv)

    def run_once(self) -> bool:
        """Run every job that is ready now; True if all of them succeeded."""
        while not self._once_done.wait(0.5):
            if self._stopping.is_set():
                break
        self.stop(grace=0)
        return all(state == S.SUCCEEDED.value for state in self.counts)


class _SkippedRuns(logging.Filter):
    """Drops APScheduler's line for a run skipped because the last one still runs.

    That is what ``max_instances=1`` is for: a heartbeat waiting on a store that does not
    answer must not write a warning at every tick of its interval (the outage is said once).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


def _quiet_skips() -> None:
    logger = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _SkippedRuns) for f in logger.filters):
        logger.addFilter(_SkippedRuns())


def log_end(row: dict[str, Any], result: RunResult, end: Settlement, took: float | None) -> None:
    """One line per ended attempt, so the worker's journal tells each job's story."""
    outcome = end.state.value
    if end.kind == "retried":
        outcome = f"{result.outcome} (retry scheduled)"
    elif end.kind == "requeued":
        outcome = f"{result.outcome} (requeued)"
    why = "" if end.state == S.SUCCEEDED or not end.message else f": {end.message[:200]}"
    log.log(
        logging.INFO if end.state in (S.SUCCEEDED, S.PARTIAL) else logging.WARNING,
        "job %s (%s) ended %s after %s%s",
        row["id"],
        row["template"],
        outcome,
        duration(took),
        why,
    )


def reexec_argv() -> list[str]:
    """The command line that started this interpreter, to replace the process with a fresh one."""
    return [sys.executable, *sys.orig_argv[1:]]
