"""What a runner or Python handler gets (RunContext) and what a run ends with (RunResult).

Handlers see their parameters (secrets included), a private work dir, ``log`` and
``progress``, ``dry_run``, and ``cancelled``: an Event set on cancel or timeout, so a
handler can poll it or use ``ctx.sleep`` as an interruptible wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsconsole.config import Settings
    from opsconsole.core.clock import Clock
    from opsconsole.core.store.db import Database


@dataclass
class RunResult:
    """How a run ended; handlers return one to end ``partial`` or to set an exit code."""

    outcome: str = "succeeded"
    """succeeded | partial | failed | timed_out | cancelled"""
    result: Any = None
    exit_code: int | None = None
    error: dict[str, Any] | None = None
    message: str = ""

    @classmethod
    def partial(cls, result: Any = None, message: str = "") -> RunResult:
        return cls(outcome="partial", result=result, message=message)

    @classmethod
    def failed(
        cls, message: str, *, kind: str = "failed", detail: Any = None, exit_code: int | None = None
    ) -> RunResult:
        return cls(
            outcome="failed",
            exit_code=exit_code,
            error={"message": message, "kind": kind, "detail": detail},
            message=message,
        )

    @classmethod
    def stopped(
        cls,
        reason: str,
        message: str,
        *,
        result: Any = None,
        exit_code: int | None = None,
        detail: Any = None,
    ) -> RunResult:
        """A run ended by its stop (``reason``: cancelled, timed_out, interrupted), saying why:
        the one shape every runner and the pool give a stopped run."""
        return cls(
            outcome=reason,
            result=result,
            exit_code=exit_code,
            error={"message": message, "kind": reason, "detail": detail},
            message=message,
        )


class Stop:
    """Why a run is being stopped; set once, read by the runner when it ends."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: str | None = None
        self.message: str = ""
        self._lock = threading.Lock()
        self._on_set: list[Callable[[], None]] = []

    def set(self, reason: str, message: str = "") -> None:
        with self._lock:
            first = self.reason is None
            if first:
                self.reason = reason
                self.message = message
            hooks = list(self._on_set) if first else []
        self.event.set()
        for hook in hooks:
            hook()

    def on_set(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` once, when the stop is first set (at once if it already is)."""
        with self._lock:
            if self.reason is None:
                self._on_set.append(hook)
                return
        hook()

    def is_set(self) -> bool:
        return self.event.is_set()


@dataclass
class RunContext:
    job_id: str
    attempt: int
    template: str
    params: dict[str, Any]
    dry_run: bool
    workdir: Path
    log_fn: Callable[[str, str], None]
    progress_fn: Callable[[int | None, str | None], None]
    pid_fn: Callable[[int], None] = lambda _pid: None
    stop: Stop = field(default_factory=Stop)
    settings: Settings | None = None
    """The worker's settings, store and clock: for built-in in-thread handlers that record
    more than a result (webhook delivery); None in an isolated handler's own process."""
    db: Database | None = None
    clock: Clock | None = None

    @property
    def cancelled(self) -> threading.Event:
        """Set when the job is cancelled or times out: stop soon."""
        return self.stop.event

    def log(self, line: str, *, stream: str = "out") -> None:
        for part in str(line).splitlines() or [""]:
            self.log_fn(stream, part)

    def progress(self, percent: int | float | None, step: str | None = None) -> None:
        pct = None if percent is None else max(0, min(100, int(percent)))
        self.progress_fn(pct, step)

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; False if the run was cancelled meanwhile."""
        return not self.stop.event.wait(seconds)
