"""Built-in HTTP check: GET a URL and compare the status, with a latency figure as result."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

from opsconsole.engine.context import RunContext, RunResult


def check(ctx: RunContext) -> Any:
    """Params: url (required), expect (status, default 200), timeout (seconds, default 10)."""
    url = str(ctx.params["url"])
    expect = int(ctx.params.get("expect") or 200)
    timeout = float(ctx.params.get("timeout") or 10)
    if ctx.dry_run:
        ctx.log(f"dry run: would GET {url} and expect {expect}")
        return {"url": url, "dry_run": True}
    ctx.progress(10, f"GET {url}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return RunResult.failed(f"GET {url} failed: {reason}", kind="http")
    elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    ctx.log(f"GET {url} -> {status} in {elapsed_ms} ms")
    ctx.progress(100, "done")
    result = {"url": url, "status": status, "elapsed_ms": elapsed_ms}
    if status != expect:
        return RunResult.failed(
            f"GET {url} returned {status}, expected {expect}", kind="http", detail=result
        )
    return result
