"""Terraform's machine-readable UI (``-json``) turned into log lines, progress and a summary.

The only place that reads Terraform's ``-json`` stream. The log gets each message's readable
``@message`` (diagnostics with their detail), never the JSON; progress counts resources done
(``apply_complete`` / ``apply_errored``) against those planned (``planned_change``, or the
``change_summary``); the stale-plan and registry errors are recognised here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STALE = "Saved plan is stale"
REGISTRY_HINTS = (
    "Failed to query available provider packages",
    "Failed to install provider",
    "Failed to resolve provider packages",
    "Inconsistent dependency lock file",
    "Missing required provider",
    "could not find",
)


@dataclass
class UiState:
    """What one Terraform command said, as it says it."""

    planned: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    summary: dict[str, Any] | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stale: bool = False


class UiReader:
    """Feeds a command's output lines to the log and its progress to the job, thread-safely."""

    def __init__(
        self,
        log: Callable[[str, str], None],
        progress: Callable[[float | None, str | None], None],
        *,
        counting: bool,
    ) -> None:
        self._log = log
        self._progress = progress
        self._counting = counting
        self._lock = threading.Lock()
        self.state = UiState()

    def line(self, stream: str, text: str) -> None:
        msg = _parse(text)
        if msg is None:  # plain output (an init, or a non-JSON line): logged as it came
            if text.strip():
                self._log("err" if stream == "stderr" else "out", text)
            return
        with self._lock:
            shown, where = self._take(msg)
        if shown:
            self._log(where, shown)

    def _take(self, msg: dict[str, Any]) -> tuple[str, str]:
        kind = msg.get("type", "")
        text = str(msg.get("@message", ""))
        st = self.state
        if kind == "version":
            return "", "out"
        if kind == "planned_change":
            addr = _addr(msg, "change")
            if addr and (msg.get("change") or {}).get("action") not in ("noop", "read"):
                st.planned.add(addr)
        elif kind in ("apply_complete", "apply_errored"):
            addr = _addr(msg, "hook")
            if addr:
                (st.done if kind == "apply_complete" else st.failed).add(addr)
                self._tick(f"{addr}: {'done' if kind == 'apply_complete' else 'failed'}")
        elif kind == "apply_start":
            self._tick(text)
        elif kind == "change_summary":
            st.summary = dict(msg.get("changes") or {})
        elif kind == "outputs":
            st.outputs = dict(msg.get("outputs") or {})
        elif kind == "diagnostic":
            diag = msg.get("diagnostic") or {}
            summary = str(diag.get("summary", ""))
            detail = " ".join(str(diag.get("detail", "")).split())
            if summary == STALE:
                st.stale = True
            if diag.get("severity") == "error":
                st.errors.append(f"{summary}: {detail}" if detail else summary)
                return (f"Error: {summary}" + (f": {detail}" if detail else "")), "err"
            return (f"Warning: {summary}" + (f": {detail}" if detail else "")), "out"
        return text, "out"

    def _tick(self, step: str) -> None:
        if not self._counting:
            return
        st = self.state
        total = len(st.planned)
        if total:
            self._progress(100.0 * len(st.done | st.failed) / total, step[:120])
        else:
            self._progress(None, step[:120])

    @property
    def first_error(self) -> str | None:
        return self.state.errors[0] if self.state.errors else None


def registry_problem(errors: list[str], text: str = "") -> str | None:
    """One line when a module needs a provider from a registry, which this host cannot reach."""
    joined = " ".join([*errors, text])
    if any(h in joined for h in REGISTRY_HINTS):
        return (
            "the module needs a provider from a registry, and opsconsole runs Terraform offline "
            "(built-in resources such as terraform_data only)"
        )
    return None


def _parse(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        msg = json.loads(text)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) and "@message" in msg else None


def _addr(msg: dict[str, Any], key: str) -> str | None:
    res = (msg.get(key) or {}).get("resource") or {}
    addr = res.get("addr")
    return str(addr) if addr else None
