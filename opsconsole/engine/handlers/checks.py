"""Built-in check handlers: HTTP, TCP port, disk usage, process present, a Nagios plugin
command, and the usage-limits sample.

Each returns ``verdict(...)``: a status with a one-line summary, the job outcome that status
means (``core/catalog/check.py``) and, where it measures time, a latency. They only look,
never change anything, except ``usage_limits`` with ``enforce: true``, which writes a marker
file per item over its limit (and nothing else) for a hook outside opsconsole to act on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opsconsole.core.catalog.check import (
    OUTCOMES,
    STATUSES,
    split_plugin_line,
    status_of_exit,
)
from opsconsole.engine.context import RunContext, RunResult

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a connection, at most (a check's ``timeout`` may be shorter)."""
USAGE_LEVELS = ((100.0, "critical", "over its limit"), (90.0, "warning", "at 90%"),
                (80.0, "warning", "at 80%"))  # fmt: skip
"""The usage-limits sample's thresholds, highest first: 80% and 90% warn, 100% enforces."""


def verdict(
    status: str, summary: str, *, latency_ms: float | None = None, perfdata: str = "", **detail: Any
) -> RunResult:
    """End a check with ``status``: the job's result says it, its state follows it."""
    if status not in STATUSES:
        raise ValueError(f"a check's status is one of {', '.join(STATUSES)}, not {status!r}")
    result = {
        "status": status,
        "summary": summary,
        "latency_ms": latency_ms,
        "perfdata": perfdata,
        **detail,
    }
    outcome = OUTCOMES[status]
    line = f"{status.upper()}: {summary}"
    if outcome == "failed":
        return RunResult(
            outcome="failed",
            result=result,
            exit_code=STATUSES.index(status),
            error={"message": line, "kind": f"check_{status}", "detail": None},
            message=line,
        )
    return RunResult(outcome=outcome, result=result, message=line if status != "ok" else "")


def _thresholds(ctx: RunContext, warn_key: str, crit_key: str) -> tuple[float | None, float | None]:
    warn, crit = ctx.params.get(warn_key), ctx.params.get(crit_key)
    return (None if warn is None else float(warn)), (None if crit is None else float(crit))


def _level(value: float, warn: float | None, crit: float | None) -> str:
    """``critical`` at or over ``crit``, ``warning`` at or over ``warn``, else ``ok``."""
    if crit is not None and value >= crit:
        return "critical"
    if warn is not None and value >= warn:
        return "warning"
    return "ok"


def without_credentials(url: str) -> str:
    """The URL as a result may show it: a ``user:password@`` in it becomes ``***@``
    (results, events and webhook payloads never carry a credential)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def http(ctx: RunContext) -> RunResult:
    """GET ``url``: critical on a failed request, an unexpected status or a body without
    ``contains``; else warning/critical when the latency reaches ``warn_ms``/``crit_ms``."""
    import httpx

    url = str(ctx.params["url"])
    shown = without_credentials(url)
    expect = int(ctx.params.get("expect") or 200)
    timeout = float(ctx.params.get("timeout") or 10)
    contains = ctx.params.get("contains")
    warn, crit = _thresholds(ctx, "warn_ms", "crit_ms")
    limits = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT))
    started = time.monotonic()
    try:
        with httpx.Client(timeout=limits, follow_redirects=False) as client:
            resp = client.get(url)
    except httpx.HTTPError as exc:
        ms = round((time.monotonic() - started) * 1000, 1)
        what = type(exc).__name__
        why = str(exc).replace(url, shown)
        return verdict("critical", f"GET {shown} failed: {what}: {why}", latency_ms=ms, url=shown)
    ms = round((time.monotonic() - started) * 1000, 1)
    ctx.log(f"GET {shown} -> {resp.status_code} in {ms} ms")
    facts = {"url": shown, "http_status": resp.status_code}
    perf = f"time={ms}ms;{warn or ''};{crit or ''}"
    if resp.status_code != expect:
        summary = f"GET {shown} returned {resp.status_code}, expected {expect}"
        return verdict("critical", summary, latency_ms=ms, perfdata=perf, **facts)
    if contains is not None and str(contains) not in resp.text:
        summary = f"GET {shown}: the body does not contain {str(contains)[:80]!r}"
        return verdict("critical", summary, latency_ms=ms, perfdata=perf, **facts)
    status = _level(ms, warn, crit)
    summary = f"GET {shown} -> {resp.status_code} in {ms:g} ms"
    if status != "ok":
        summary += f" (threshold {crit if status == 'critical' else warn:g} ms)"
    return verdict(status, summary, latency_ms=ms, perfdata=perf, **facts)


def tcp(ctx: RunContext) -> RunResult:
    """Connect to ``host``:``port``: critical when refused or timed out; latency thresholds."""
    host, port = str(ctx.params["host"]), int(ctx.params["port"])
    timeout = float(ctx.params.get("timeout") or CONNECT_TIMEOUT)
    warn, crit = _thresholds(ctx, "warn_ms", "crit_ms")
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        ms = round((time.monotonic() - started) * 1000, 1)
        why = exc.strerror or type(exc).__name__
        return verdict("critical", f"{host}:{port}: {why}", latency_ms=ms, host=host, port=port)
    ms = round((time.monotonic() - started) * 1000, 1)
    status = _level(ms, warn, crit)
    summary = f"{host}:{port} accepts connections ({ms:g} ms)"
    return verdict(status, summary, latency_ms=ms, perfdata=f"time={ms}ms", host=host, port=port)


def disk(ctx: RunContext) -> RunResult:
    """Used % of the filesystem holding ``path`` (as ``df`` counts it) against ``warn``/``crit``."""
    path = str(ctx.params["path"])
    warn, crit = _thresholds(ctx, "warn", "crit")
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return verdict("unknown", f"{path}: {exc.strerror or type(exc).__name__}", path=path)
    # df's Use%: what is used of what a non-root user could use
    pct = round(usage.used / ((usage.used + usage.free) or 1) * 100, 1)
    status = _level(pct, warn, crit)
    free_gib = usage.free / 2**30
    summary = f"{path} is {pct:g}% used ({free_gib:.1f} GiB free)"
    perf = f"used={pct}%;{warn or ''};{crit or ''}"
    return verdict(status, summary, perfdata=perf, path=path, used_pct=pct)


def _processes() -> list[tuple[int, str]]:
    """Every process's pid and command line (its name when the command line is empty)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            cmd = raw.replace(b"\0", b" ").decode(errors="replace").strip()
            if not cmd:
                cmd = (entry / "comm").read_text().strip()
        except OSError:  # it ended while we looked
            continue
        out.append((int(entry.name), cmd))
    return out


def process(ctx: RunContext) -> RunResult:
    """At least ``min`` processes (default 1) named ``name`` or whose command line matches
    the regular expression ``pattern`` (from /proc); critical when fewer."""
    name, pattern = ctx.params.get("name"), ctx.params.get("pattern")
    if bool(name) == bool(pattern):
        return verdict("unknown", "give exactly one of the parameters name or pattern")
    least = int(ctx.params.get("min") or 1)
    try:
        regex = re.compile(str(pattern)) if pattern else None
    except re.error as exc:
        return verdict("unknown", f"pattern is not a valid regular expression: {exc}")
    me = os.getpid()
    found = []
    for pid, cmd in _processes():
        if pid == me:
            continue
        argv0 = os.path.basename(cmd.split(" ", 1)[0])
        if (regex is not None and regex.search(cmd)) or (name is not None and argv0 == name):
            found.append(pid)
    what = f"name {name}" if name else f"pattern {pattern!s}"
    summary = f"{len(found)} process(es) with {what} (at least {least} expected)"
    status = "ok" if len(found) >= least else "critical"
    return verdict(status, summary, perfdata=f"procs={len(found)};;{least}:", pids=found[:20])


def command(ctx: RunContext) -> RunResult:
    """Run a Nagios plugin (``argv``, never through a shell): its exit code is the status,
    its first output line the summary, and what follows ``|`` the performance data."""
    argv = [str(a) for a in ctx.params["argv"]]
    timeout = float(ctx.params.get("timeout") or 60)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, cwd=ctx.workdir, check=False
        )
    except subprocess.TimeoutExpired:
        return verdict("unknown", f"{argv[0]} did not finish within {timeout:g}s")
    except OSError as exc:
        return verdict("unknown", f"cannot run {argv[0]!r}: {exc.strerror or exc}")
    ms = round((time.monotonic() - started) * 1000, 1)
    for line in proc.stdout.splitlines():
        ctx.log(line)
    for line in proc.stderr.splitlines():
        ctx.log(line, stream="err")
    first = proc.stdout.splitlines()[0] if proc.stdout.strip() else ""
    summary, perfdata = split_plugin_line(first)
    status = status_of_exit(proc.returncode)
    if not summary:
        summary = f"{os.path.basename(argv[0])} exited {proc.returncode} without output"
    return verdict(status, summary, latency_ms=ms, perfdata=perfdata, exit=proc.returncode)


def usage_limits(ctx: RunContext) -> RunResult:
    """The usage-limits sample: each item's usage against its limit; 80% and 90% warn, 100%
    is critical and, with ``enforce: true`` (and not a dry run), enforced.

    ``usage_file`` is JSON: ``{"items": [{"name": ..., "usage": ..., "limit": ...}]}``.
    Enforcing writes ``<marker_dir>/<item>.over-limit`` (JSON: usage, limit, job) for the
    operator's own hook to act on; it never deletes, stops or blocks anything itself.
    """
    path = Path(str(ctx.params["usage_file"]))
    enforce = bool(ctx.params.get("enforce")) and not ctx.dry_run
    try:
        items = json.loads(path.read_text())["items"]
        rows = [(str(i["name"]), float(i["usage"]), float(i["limit"])) for i in items]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return verdict("unknown", f"cannot read usage from {path}: {type(exc).__name__}: {exc}")
    worst, notes, over = "ok", [], []
    for name, used, limit in rows:
        pct = used / limit * 100 if limit > 0 else 100.0
        level = next(((s, w) for t, s, w in USAGE_LEVELS if pct >= t), None)
        if level is None:
            continue
        status, words = level
        notes.append(f"{name} {pct:.0f}% ({words})")
        if status == "critical":
            over.append((name, used, limit))
        if STATUSES.index(status) > STATUSES.index(worst):
            worst = status
    enforced = []
    if over:
        marker_dir = Path(str(ctx.params.get("marker_dir") or ctx.workdir))
        for name, used, limit in over:
            if not enforce:
                ctx.log(f"dry run: would enforce the limit of {name} ({used:g} of {limit:g})")
                continue
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "item"
            marker = marker_dir / f"{safe}.over-limit"
            body = {"item": name, "usage": used, "limit": limit, "job": ctx.job_id}
            marker.write_text(json.dumps(body) + "\n")
            ctx.log(f"enforced the limit of {name}: wrote {marker}")
            enforced.append(name)
    summary = f"{len(rows)} item(s) checked" + (
        ": " + ", ".join(notes) if notes else ", all under 80%"
    )
    if over and not enforce:
        summary += " (dry run: nothing enforced)"
    return verdict(worst, summary, items=len(rows), enforced=enforced)
