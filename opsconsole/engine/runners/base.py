"""The Runner protocol, what a runner is given, and the stdout marker protocol.

Commands report progress and results by printing marker lines on stdout; markers update
the job and are not logged:

    ::progress 40 Querying data     percent (0-100), then an optional step
    ::step Uploading                the current step alone
    ::result {"url": "..."}         the job's result (JSON; plain text is kept as a string)
    ::outcome partial               end partial (or failed) even on exit code 0
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opsconsole.core.catalog import Template
from opsconsole.engine.context import RunContext, RunResult

if TYPE_CHECKING:
    from opsconsole.config import Settings
    from opsconsole.core.clock import Clock
    from opsconsole.core.secrets import SecretBox
    from opsconsole.core.store.db import Database

OUTCOMES = ("succeeded", "partial", "failed")


@dataclass(frozen=True)
class RunSpec:
    """Everything about one attempt that is not in the context: the template and limits."""

    template: Template
    timeout_s: float | None
    kill_grace: float
    line_max: int
    catalog_dir: Path
    env: dict[str, str]
    """Extra environment for children: job id, attempt, dry run."""
    row: dict[str, Any] | None = None
    """The claimed job row (phase, gate round, ...), for runners whose run has stages."""
    db: Database | None = None
    """The store, for runners that record more than log lines (the hosts grid, plans)."""
    clock: Clock | None = None
    settings: Settings | None = None
    box: SecretBox | None = None
    """The store's secret key, for runners that keep sealed files in the store (plans)."""

    def deadline(self, started: float | None = None) -> float | None:
        if self.timeout_s is None:
            return None
        return (started if started is not None else time.monotonic()) + self.timeout_s


class Runner(Protocol):
    def run(self, spec: RunSpec, ctx: RunContext) -> RunResult:
        """Run one attempt to its end; cancel and timeout arrive through ``ctx.stop``."""
        ...


class MarkerParser:
    """Turns marker lines into context calls; everything else goes to the log."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.result: Any = None
        self.has_result = False
        self.outcome: str | None = None
        self.error: dict[str, Any] | None = None
        self.message: str | None = None
        """What the job's end says (``::message``), instead of its bare exit code."""

    def line(self, stream: str, text: str) -> None:
        if stream == "stdout" and text.startswith("::") and self._marker(text):
            return
        self.ctx.log(text, stream="err" if stream == "stderr" else "out")

    def _marker(self, text: str) -> bool:
        name, _, rest = text[2:].partition(" ")
        rest = rest.strip()
        if name == "progress":
            num, _, step = rest.partition(" ")
            try:
                pct = float(num)
            except ValueError:
                return False
            self.ctx.progress(pct, step.strip() or None)
            return True
        if name == "step":
            self.ctx.progress(None, rest or None)
            return True
        if name == "result":
            try:
                self.result = json.loads(rest)
            except ValueError:
                self.result = rest
            self.has_result = True
            return True
        if name == "outcome" and rest in OUTCOMES:
            self.outcome = rest
            return True
        if name == "message" and rest:
            self.message = rest[:500]
            return True
        if name == "error":
            try:
                err = json.loads(rest)
            except ValueError:
                err = {"message": rest}
            if isinstance(err, dict):
                self.error = err
                return True
        return False
