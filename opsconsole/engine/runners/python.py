"""Python runner: a ``module:function`` handler that takes the RunContext.

By default the handler runs on the slot's own thread (no process per job); cancel and
timeout reach it through ``ctx.cancelled``. With ``isolate: true`` it runs in a child
process (``runners/child.py``) that can be killed like a shell job.
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsconsole.core.catalog import check_handler_files, render
from opsconsole.core.errors import InvalidParams
from opsconsole.engine.context import RunContext, RunResult
from opsconsole.engine.runners.base import RunSpec
from opsconsole.engine.runners.shell import child_env, python_argv, supervise

_import_lock = threading.Lock()


def load_handler(ref: str, catalog_dir: Path) -> Callable[[RunContext], Any]:
    """Import ``module:function``; the catalog dir is importable so handlers sit by templates."""
    module_name, _, func_name = ref.partition(":")
    if not module_name or not func_name:
        raise InvalidParams(f"handler '{ref}' must look like module:function")
    check_handler_files(ref, catalog_dir)  # links in the catalog may have changed since load
    with _import_lock:
        root = str(catalog_dir)
        if catalog_dir.is_dir() and root not in sys.path:
            sys.path.append(root)
        module = importlib.import_module(module_name)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise InvalidParams(f"handler '{ref}': {module_name} has no function {func_name}")
    return func


def error_of(exc: BaseException) -> dict[str, Any]:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3)
    return {
        "message": str(exc) or type(exc).__name__,
        "kind": type(exc).__name__,
        "detail": {"traceback": "".join(tb)[-4000:]},
    }


def result_of(value: Any) -> RunResult:
    if isinstance(value, RunResult):
        return value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        value = repr(value)
    return RunResult(outcome="succeeded", result=value)


def call_handler(func: Callable[[RunContext], Any], ctx: RunContext) -> RunResult:
    try:
        return result_of(func(ctx))
    except Exception as exc:
        ctx.log(f"handler raised {type(exc).__name__}: {exc}", stream="err")
        return RunResult(outcome="failed", error=error_of(exc), message=str(exc))


class PythonRunner:
    def run(self, spec: RunSpec, ctx: RunContext) -> RunResult:
        tpl = spec.template
        assert tpl.handler is not None
        if tpl.isolate:
            return self._isolated(spec, ctx)
        try:
            func = load_handler(tpl.handler, spec.catalog_dir)
        except Exception as exc:
            return RunResult(
                outcome="failed", error=error_of(exc), message=f"cannot load handler {tpl.handler}"
            )
        timer = None
        if spec.timeout_s is not None:
            timer = threading.Timer(
                spec.timeout_s,
                ctx.stop.set,
                args=("timed_out", f"timed out after {spec.timeout_s:g}s"),
            )
            timer.daemon = True
            timer.start()
        try:
            res = call_handler(func, ctx)
        finally:
            if timer is not None:
                timer.cancel()
        if ctx.stop.reason is not None:
            # a handler that returns after being stopped was stopped, whatever it returned
            return RunResult(
                outcome=ctx.stop.reason,
                result=res.result,
                error={
                    "message": ctx.stop.message or ctx.stop.reason,
                    "kind": ctx.stop.reason,
                    "detail": None,
                },
            )
        return res

    def _isolated(self, spec: RunSpec, ctx: RunContext) -> RunResult:
        tpl = spec.template
        extra = {k: render(v, ctx.params) for k, v in tpl.env.items()}
        payload = {
            "handler": tpl.handler,
            "catalog_dir": str(spec.catalog_dir),
            "params": ctx.params,
            "job_id": ctx.job_id,
            "attempt": ctx.attempt,
            "template": ctx.template,
            "dry_run": ctx.dry_run,
        }
        return supervise(
            python_argv(), child_env(spec, extra), spec, ctx, stdin=json.dumps(payload).encode()
        )
