"""Python runner: a ``module:function`` handler that takes the RunContext.

By default (``isolate: true``) the handler runs in a process of its own (``runners/child.py``),
so its crash, ``os._exit`` or ignored cancel ends that process and never the worker; cancel
and timeout stop it like a shell job. ``isolate: false`` runs a trusted handler on the slot's
own thread (fastest): cancel and timeout reach it only through ``ctx.cancelled``, and what it
prints goes to its job's log through a thread-aware ``sys.stdout``/``sys.stderr``.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from opsconsole.core.catalog import check_handler_files, render
from opsconsole.core.errors import InvalidParams
from opsconsole.core.secrets import Redactor
from opsconsole.engine.context import RunContext, RunResult
from opsconsole.engine.runners import zygote
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
    except SystemExit as exc:  # on a slot's thread it would end the slot, not the job
        ctx.log(f"handler called sys.exit({exc.code!r})", stream="err")
        err = error_of(exc)
        err["message"] = f"handler called sys.exit({exc.code!r}) instead of returning"
        return RunResult(outcome="failed", error=err, message=err["message"])
    except Exception as exc:
        err = error_of(exc)
        # the log is where an operator looks first: the traceback goes there, masked like
        # every log line, and not only into the job's error detail
        for line in err["detail"]["traceback"].rstrip("\n").splitlines():
            ctx.log(line, stream="err")
        return RunResult(outcome="failed", error=err, message=str(exc))


# -- stopping a handler that ignores its stop ---------------------------------------------


class HandlerInterrupted(BaseException):
    """Raised inside an in-thread handler that ignored its stop.

    A BaseException, so that a handler's ``except Exception`` does not swallow it.
    """


def interrupt_thread(thread: threading.Thread) -> bool:
    """Raise ``HandlerInterrupted`` in ``thread`` when it next runs Python code; True if set.

    This stops a pure-Python loop. It cannot stop a thread blocked in C (``time.sleep``, a
    socket read, a lock, a long call into a C extension) before that call returns, nor a
    handler that catches BaseException and carries on: only a process can be killed.
    """
    ident = thread.ident
    if ident is None or not thread.is_alive():
        return False
    set_async = ctypes.pythonapi.PyThreadState_SetAsyncExc
    hit = set_async(ctypes.c_ulong(ident), ctypes.py_object(HandlerInterrupted))
    if hit > 1:  # one ident names one thread; never leave an exception pending in several
        set_async(ctypes.c_ulong(ident), None)
    return bool(hit == 1)


# -- what an in-thread handler prints ------------------------------------------------------


class _Route:
    """One handler thread's output: whole lines go to its job's log (where they are masked)."""

    def __init__(self, ctx: RunContext, redactor: Redactor) -> None:
        self.ctx = ctx
        self.redactor = redactor
        self.emitting = False
        self._partial = {"out": "", "err": ""}

    def write(self, stream: str, text: str) -> None:
        buf = self._partial[stream] + text
        *lines, self._partial[stream] = buf.split("\n")
        for line in lines:
            self.emit(stream, line)

    def emit(self, stream: str, line: str) -> None:
        self.emitting = True  # a log function that prints must not loop back here
        try:
            self.ctx.log(line, stream=stream)
        finally:
            self.emitting = False

    def close(self) -> None:
        for stream, rest in self._partial.items():
            if rest:
                self.emit(stream, rest)
        self._partial = {"out": "", "err": ""}


class _Routed:
    """Stands in for ``sys.stdout`` or ``sys.stderr`` while in-thread handlers run."""

    def __init__(self, real: TextIO | None, stream: str, routes: _Routes) -> None:
        self._real = real
        self._stream = stream
        self._routes = routes

    def write(self, text: str) -> int:
        route = self._routes.current()
        if route is not None and not route.emitting:
            route.write(self._stream, text)
        elif self._real is not None:
            # another thread (one a handler started, say): mask the running handlers' secrets
            self._real.write(self._routes.mask(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._real is not None and self._routes.current() is None:
            self._real.flush()

    def isatty(self) -> bool:
        return self._routes.current() is None and self._real is not None and self._real.isatty()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, buffer...: the real stream's
        return getattr(self._real, name)


class _Routes:
    """Which threads run in-thread handlers; installs the stand-ins while any does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_thread: dict[int, _Route] = {}
        self._saved: tuple[Any, Any] | None = None
        self._proxies: tuple[_Routed, _Routed] | None = None

    def current(self) -> _Route | None:
        return self._by_thread.get(threading.get_ident())

    def mask(self, text: str) -> str:
        for route in list(self._by_thread.values()):
            text = route.redactor.text(text)
        return text

    @contextlib.contextmanager
    def capture(self, ctx: RunContext, redactor: Redactor) -> Iterator[None]:
        ident = threading.get_ident()
        route = _Route(ctx, redactor)
        with self._lock:
            if not self._by_thread:
                self._install()
            previous = self._by_thread.get(ident)
            self._by_thread[ident] = route
        try:
            yield
        finally:
            route.close()
            with self._lock:
                if previous is not None:
                    self._by_thread[ident] = previous
                else:
                    del self._by_thread[ident]
                if not self._by_thread:
                    self._uninstall()

    def _install(self) -> None:
        self._saved = (sys.stdout, sys.stderr)
        self._proxies = (_Routed(sys.stdout, "out", self), _Routed(sys.stderr, "err", self))
        sys.stdout, sys.stderr = self._proxies  # type: ignore[assignment]

    def _uninstall(self) -> None:
        assert self._saved is not None and self._proxies is not None
        # someone who replaced them meanwhile (a test harness) keeps theirs
        if sys.stdout is self._proxies[0]:
            sys.stdout = self._saved[0]
        if sys.stderr is self._proxies[1]:
            sys.stderr = self._saved[1]
        self._saved = self._proxies = None


_routes = _Routes()


# -- the runner ----------------------------------------------------------------------------


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
        secrets = Redactor(ctx.params.get(name) for name in tpl.secret_names())
        interrupted = False
        try:
            with _routes.capture(ctx, secrets):
                res = call_handler(func, ctx)
        except HandlerInterrupted:
            interrupted = True
            res = RunResult(outcome=ctx.stop.reason or "interrupted")
        finally:
            if timer is not None:
                timer.cancel()
        if ctx.stop.reason is not None:
            # a handler that returns after being stopped was stopped, whatever it returned
            message = ctx.stop.message or ctx.stop.reason
            if interrupted:
                message += "; the handler ignored it and was interrupted"
            return RunResult.stopped(ctx.stop.reason, message, result=res.result)
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
        res = supervise(
            python_argv(),
            child_env(spec, extra),
            spec,
            ctx,
            stdin=json.dumps(payload).encode(),
            launcher=zygote.shared(),  # a fork of the handler host, not a fresh interpreter
        )
        return died_abruptly(res)


def died_abruptly(res: RunResult) -> RunResult:
    """Name the cause when a handler's process ended without reporting (exit, crash, kill)."""
    err = res.error
    if res.outcome != "failed" or not err or err.get("kind") != "exit_code":
        return res  # the handler reported its own end (an error, a result, an outcome)
    detail = err.get("detail") or {}
    signum = detail.get("signal")
    if signum:
        try:
            how = f"killed by {signal.Signals(signum).name}"
        except ValueError:
            how = f"killed by signal {signum}"
    else:
        how = f"exit code {res.exit_code}"
    message = f"handler process died: {how}"
    return RunResult(
        outcome="failed",
        result=res.result,
        exit_code=res.exit_code,
        error={"message": message, "kind": "crashed", "detail": detail},
        message=message,
    )
