"""Real `opsconsole worker` processes for the multi-host tests: each with its own host
identity (``OPSCONSOLE_HOST_ID``), its own log file, stopped and reaped by the test.

A "host" here is a host id: two workers with one id share a machine (the reaper may check
each other's pids and kill process groups); workers with different ids are on different
machines as far as opsconsole knows.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent / "opsconsole"

SHORT_LEASES = {
    "OPSCONSOLE_POLL_INTERVAL": "0.05",
    "OPSCONSOLE_HEARTBEAT_INTERVAL": "0.2",
    "OPSCONSOLE_LEASE": "2",
    "OPSCONSOLE_KILL_GRACE": "0.5",
    "OPSCONSOLE_DRAIN_GRACE": "1",
}
"""FAST-like settings for worker processes: a worker is stale 2 s after its last heartbeat."""


def worker_env(db: str, home: Path, catalog: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker process: this test's store, home and catalog only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}
    env.update(
        OPSCONSOLE_HOME=str(home),
        OPSCONSOLE_DB=db,
        OPSCONSOLE_CATALOG=str(catalog),
        **SHORT_LEASES,
        **extra,
    )
    return env


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def running(self) -> bool:
        """Started and listening for signals (it logs its slots just before)."""
        return self.proc.poll() is None and " slots on " in self.output()


@dataclass
class Fleet:
    """The worker processes a test started; all are killed when the test ends."""

    db: str
    home: Path
    catalog: Path
    logs: Path
    workers: list[Worker] = field(default_factory=list)

    def start(
        self, name: str, *, host: str, slots: int = 2, home: Path | None = None, **extra: str
    ) -> Worker:
        log = self.logs / f"{name}.log"
        env = worker_env(self.db, home or self.home, self.catalog, OPSCONSOLE_HOST_ID=host)
        env.update(extra)
        with log.open("wb") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [str(BIN), "worker", "--workers", str(slots)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a kill -9 of the test's worker spares the test
            )
        worker = Worker(name, proc, log)
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for w in self.workers:
            if w.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGCONT)  # a frozen one must hear the TERM
                w.proc.send_signal(signal.SIGTERM)  # drains (drain_grace 1 s), then stops
        for w in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(timeout=20)
            if w.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(w.proc.pid, signal.SIGKILL)
                w.proc.wait(timeout=10)


@contextlib.contextmanager
def fleet(db: str, home: Path, catalog: Path, logs: Path) -> Iterator[Fleet]:
    logs.mkdir(parents=True, exist_ok=True)
    f = Fleet(db, home, catalog, logs)
    try:
        yield f
    finally:
        f.stop_all()
