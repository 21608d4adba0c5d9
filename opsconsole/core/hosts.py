"""The Ansible hosts grid as a read model: hosts by task, each cell's state, the recap.

The only place that decides how the grid reads: which hosts are pinned on top, what the
totals line counts, which task runs now and what is left out when the grid does not fit.
Both faces (``jobs hosts`` and the console's hosts view) show a ``HostGrid`` and decide
nothing about it. ``build_grid`` is a pure function of the store's cells and the recap;
``HostsMixin.host_grid`` reads them for one job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from opsconsole.core.errors import InvalidParams
from opsconsole.core.host import ServiceHost
from opsconsole.core.states import FINAL, JobState
from opsconsole.core.store import hosts as host_store
from opsconsole.core.store import queries
from opsconsole.core.views import iso

STATUSES = ("running", "ok", "changed", "failed", "unreachable", "skipped", "ignored")
"""What a cell's status can be, as the Ansible runner writes it."""
STOPPED = "stopped"
"""A cell still ``running`` when its job ended (cancelled, timed out): it never finished."""
TOTAL_KEYS = ("ok", "changed", "failed", "unreachable", "skipped")
"""The totals line, in the order Ansible's recap prints them."""
RECAP_KEYS = (*TOTAL_KEYS, "rescued", "ignored")
BAD = frozenset({"failed", "unreachable"})
NO_TASK = "no task has started"

SYMBOLS: dict[str, str] = {
    "ok": "✓",
    "changed": "●",
    "failed": "✗",
    "unreachable": "!",
    "skipped": "\u2013",  # an en dash: a hyphen reads as a minus or a gap
    "running": "…",
    "ignored": "~",
    STOPPED: "◌",
}
"""One character per cell status, the same in ``jobs hosts`` and the console."""
NOT_RUN = "·"
"""A task the host has not reached, or does not run."""
STYLES: dict[str, str] = {
    "ok": "green",
    "changed": "yellow",
    "failed": "bold red",
    "unreachable": "red",
    "skipped": "cyan",
    "running": "bold",
    "ignored": "dim red",
    STOPPED: "dim",
}
"""Rich styles per cell status, in the job states' palette (``core.text.STATE_STYLES``):
ok green like succeeded, failed bold red like failed, unreachable red like timed_out,
stopped dim like cancelled."""
MEANINGS: dict[str, str] = {
    "ok": "ok",
    "changed": "changed",
    "failed": "failed",
    "unreachable": "unreachable",
    "skipped": "skipped",
    "running": "running",
    "ignored": "ignored",
    STOPPED: "stopped",
}
"""What each symbol means, in a word: the legend both faces print."""
EXPLAINED: dict[str, str] = {
    "ignored": "failed, ignored (ignore_errors)",
    STOPPED: "stopped: the run ended before this task did",
}
"""The longer words for a cell whose symbol needs them (the cell under the cursor)."""


@dataclass(frozen=True)
class Totals:
    """Counts as Ansible's recap keeps them: ``ok`` includes changed and ignored results."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    @classmethod
    def of_cells(cls, statuses: Iterable[str]) -> Totals:
        counts = dict.fromkeys(RECAP_KEYS, 0)
        for status in statuses:
            if status in ("ok", "changed", "ignored"):
                counts["ok"] += 1
            if status in ("changed", "failed", "unreachable", "skipped", "ignored"):
                counts[status] += 1
        return cls(**counts)

    @classmethod
    def of_recap(cls, recap: Mapping[str, Any]) -> Totals:
        return cls(**{k: _count(recap.get(k)) for k in RECAP_KEYS})

    def __add__(self, other: Totals) -> Totals:
        return Totals(*(getattr(self, k) + getattr(other, k) for k in RECAP_KEYS))

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in RECAP_KEYS}

    def line(self) -> str:
        """``ok=3 changed=1 failed=0 unreachable=1 skipped=2`` (as Ansible's recap says it)."""
        text = " ".join(f"{k}={getattr(self, k)}" for k in TOTAL_KEYS)
        extra = [f"{k}={getattr(self, k)}" for k in ("rescued", "ignored") if getattr(self, k)]
        return " ".join([text, *extra])


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(frozen=True)
class Cell:
    host: str
    seq: int
    status: str
    msg: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "seq": self.seq,
            "status": self.status,
            "msg": self.msg,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
        }


@dataclass(frozen=True)
class Task:
    seq: int
    """The task's position in the run: the grid's column order."""
    name: str
    play: str
    running: bool = False
    """A host is working on this task now."""

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "name": self.name, "play": self.play, "running": self.running}


@dataclass(frozen=True)
class HostRow:
    name: str
    cells: Mapping[int, Cell]
    """Task seq -> cell; a task the host has not reached (or does not run) has none."""
    totals: Totals
    pinned: bool
    """A task failed on it or it was unreachable: shown above every other host."""

    @property
    def changed(self) -> bool:
        return self.totals.changed > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pinned": self.pinned,
            "changed": self.changed,
            "recap": self.totals.to_dict(),
        }


@dataclass(frozen=True)
class HostGrid:
    """One attempt of one Ansible job: hosts in display order by tasks in run order."""

    job_id: str
    attempt: int | None
    """None before the job's first attempt started."""
    state: JobState
    hosts: tuple[HostRow, ...]
    tasks: tuple[Task, ...]
    totals: Totals
    from_recap: bool = False
    """The totals are Ansible's own recap (the attempt ended); else counted from the cells."""
    hidden_hosts: int = 0
    """Hosts left out at the bottom (``window``); the totals still count them."""
    hidden_tasks: int = 0
    """The earliest tasks left out (``window``), so the newest stay in view."""
    template: str = ""
    attempts: int = 0
    """Attempts the job has started: ``--attempt`` may name any of 1..attempts."""
    task_count: int = field(default=-1)
    """Every task of the attempt, hidden ones included (set by ``build_grid``)."""

    @property
    def final(self) -> bool:
        return self.state in FINAL

    @property
    def empty(self) -> bool:
        return not self.hosts and not self.tasks

    @property
    def message(self) -> str | None:
        """What an empty grid says instead of a table."""
        return NO_TASK if self.empty else None

    @property
    def current(self) -> Task | None:
        """The task running now: the newest one a host is working on."""
        running = [t for t in self.tasks if t.running]
        return running[-1] if running else None

    @property
    def pinned(self) -> int:
        return sum(1 for h in self.hosts if h.pinned)

    def running_on(self, seq: int) -> int:
        """How many hosts are working on task ``seq`` now."""
        return sum(
            1 for h in self.hosts if (c := h.cells.get(seq)) is not None and c.status == "running"
        )

    def cell(self, host: str, seq: int) -> Cell | None:
        for row in self.hosts:
            if row.name == host:
                return row.cells.get(seq)
        return None

    def task(self, seq: int) -> Task | None:
        for t in self.tasks:
            if t.seq == seq:
                return t
        return None

    def window(self, max_hosts: int | None = None, max_tasks: int | None = None) -> HostGrid:
        """The part that fits: the last ``max_tasks`` tasks and the first ``max_hosts`` hosts.

        Pinned hosts come first, so they are the last to be left out; the totals still
        count every host.
        """
        tasks, hosts = self.tasks, self.hosts
        hidden_tasks, hidden_hosts = self.hidden_tasks, self.hidden_hosts
        if max_tasks is not None and len(tasks) > max(max_tasks, 0):
            cut = len(tasks) - max(max_tasks, 0)
            hidden_tasks += cut
            tasks = tasks[cut:]
        if max_hosts is not None and len(hosts) > max(max_hosts, 0):
            hidden_hosts += len(hosts) - max(max_hosts, 0)
            hosts = hosts[: max(max_hosts, 0)]
        return replace(
            self, tasks=tasks, hosts=hosts, hidden_tasks=hidden_tasks, hidden_hosts=hidden_hosts
        )

    def to_dict(self) -> dict[str, Any]:
        current = self.current
        return {
            "job": self.job_id,
            "template": self.template,
            "attempt": self.attempt,
            "attempts": self.attempts,
            "state": self.state.value,
            "final": self.final,
            "message": self.message,
            "current_task": None if current is None else current.seq,
            "tasks": [t.to_dict() for t in self.tasks],
            "hosts": [h.to_dict() for h in self.hosts],
            "cells": [c.to_dict() for h in self.hosts for c in h.cells.values()],
            "recap": {h.name: h.totals.to_dict() for h in self.hosts},
            "totals": self.totals.to_dict(),
            "totals_from": "recap" if self.from_recap else "cells",
            "hidden_hosts": self.hidden_hosts,
            "hidden_tasks": self.hidden_tasks,
        }


def build_grid(
    rows: Iterable[Mapping[str, Any]],
    *,
    job_id: str,
    state: JobState,
    attempt: int | None,
    recap: Mapping[str, Any] | None = None,
    template: str = "",
    attempts: int = 0,
    ended: bool | None = None,
) -> HostGrid:
    """The grid of one attempt from its ``host_tasks`` rows and, once it ended, its recap.

    ``recap`` (host -> Ansible's counts) replaces the counts made from the cells, host by
    host, and adds hosts that have no cell; it is trusted only for an ended job. A cell
    still ``running`` in an ended attempt is shown ``stopped``: nobody works on it any more.
    ``ended`` says whether the attempt ended (default: whether the job did).
    """
    final = state in FINAL if ended is None else ended
    cells: dict[str, dict[int, Cell]] = {}
    tasks: dict[int, tuple[str, str]] = {}
    running: set[int] = set()
    for r in rows:
        seq, host, status = int(r["seq"]), str(r["host"]), str(r["status"])
        if status == "running":
            if final:
                status = STOPPED
            else:
                running.add(seq)
        name, play = str(r.get("task") or ""), str(r.get("play") or "")
        known = tasks.get(seq)
        if known is None or (not known[0] and name):
            tasks[seq] = (name, play)
        cells.setdefault(host, {})[seq] = Cell(
            host=host,
            seq=seq,
            status=status,
            msg=str(r.get("msg") or ""),
            started_at=r.get("started_at"),
            ended_at=r.get("ended_at"),
        )
    recap = recap if final and recap else {}
    names = set(cells) | {str(h) for h in recap}
    hosts: list[HostRow] = []
    for name in names:
        mine = cells.get(name, {})
        given = recap.get(name)
        totals = (
            Totals.of_recap(given)
            if isinstance(given, Mapping)
            else Totals.of_cells(c.status for c in mine.values())
        )
        pinned = totals.failed > 0 or totals.unreachable > 0
        if not isinstance(given, Mapping):
            pinned = pinned or any(c.status in BAD for c in mine.values())
        hosts.append(
            HostRow(name=name, cells=dict(sorted(mine.items())), totals=totals, pinned=pinned)
        )
    hosts.sort(key=lambda h: (not h.pinned, not h.changed, h.name))
    columns = tuple(
        Task(seq=seq, name=name or f"task {seq + 1}", play=play, running=seq in running)
        for seq, (name, play) in sorted(tasks.items())
    )
    total = Totals()
    for h in hosts:
        total = total + h.totals
    return HostGrid(
        job_id=job_id,
        attempt=attempt,
        state=state,
        hosts=tuple(hosts),
        tasks=columns,
        totals=total,
        from_recap=bool(recap),
        template=template,
        attempts=attempts,
        task_count=len(columns),
    )


class HostsMixin(ServiceHost):
    """``OpsService.host_grid``: the grid of one Ansible job, read from the store."""

    def host_grid(self, ref: str, attempt: int | None = None) -> HostGrid:
        """The hosts x tasks grid of an Ansible job's attempt.

        Args:
            attempt: which attempt (1 is the first); default the newest one, the one
                running now or the last that ran.
        """
        job_id = queries.resolve(self.db, ref)
        row, _ = queries.get(self.db, job_id)
        spec = row["spec"] if isinstance(row["spec"], Mapping) else {}
        if spec.get("runner") != "ansible":
            runner = spec.get("runner") or "shell"
            raise InvalidParams(
                f"job {job_id} is not an Ansible job (template {row['template']} runs "
                f"{runner}): only Ansible jobs have a hosts grid"
            )
        started = int(row["attempts"] or 0)
        newest = max(started, host_store.latest_attempt(self.db, job_id) or 0)
        if attempt is not None and not 1 <= attempt <= max(newest, 1):
            have = f"1..{newest}" if newest else "none yet"
            raise InvalidParams(f"job {job_id} has no attempt {attempt} (attempts: {have})")
        which = attempt or newest or None
        state = JobState(row["state"])
        result = row["result"]
        recap = None
        if which == newest and isinstance(result, Mapping):
            given = result.get("recap")
            recap = given if isinstance(given, Mapping) else None
        cells = host_store.grid(self.db, job_id, which) if which else []
        return build_grid(
            cells,
            job_id=job_id,
            state=state,
            attempt=which,
            recap=recap,
            template=row["template"],
            attempts=newest,
            ended=state in FINAL or (which or 0) < newest,
        )
