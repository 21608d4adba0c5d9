"""Sample Python handler: sync an inventory host by host, reporting progress.

Hosts named in ``fail`` fail; if some fail and others succeed the job ends ``partial``.
"""

from __future__ import annotations

from typing import Any

from opsconsole.engine.context import RunContext, RunResult


def sync(ctx: RunContext) -> Any:
    hosts: list[str] = ctx.params["hosts"]
    failing = set(ctx.params.get("fail") or [])
    done: list[str] = []
    failed: list[str] = []
    for i, host in enumerate(hosts, start=1):
        if ctx.cancelled.is_set():
            break
        ctx.progress(100 * (i - 1) / len(hosts), f"Syncing {host}")
        if ctx.dry_run:
            ctx.log(f"dry run: would sync {host}")
        elif host in failing:
            ctx.log(f"{host}: unreachable", stream="err")
            failed.append(host)
            continue
        else:
            ctx.log(f"{host}: 42 records synced")
        done.append(host)
        ctx.sleep(float(ctx.params.get("delay") or 0))
    ctx.progress(100, "Done")
    result = {"synced": done, "failed": failed}
    if failed and done:
        return RunResult.partial(result, f"{len(failed)} of {len(hosts)} hosts failed")
    if failed:
        return RunResult.failed("every host failed", kind="sync", detail=result)
    return result
