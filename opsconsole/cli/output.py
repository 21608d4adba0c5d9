"""The only stdout writer: Rich tables for people, JSON for scripts; and the notes on stderr.

With ``--json`` nothing but JSON reaches stdout, written by ``core.text.to_json``. Piped
tables are plain rows without trailing spaces; what is said to the person (a warning, why a
job failed, what Ctrl-C left running) goes to stderr, never into a pipe's data. Untrusted
text (job output, parameters, messages, catalog text) is rendered as plain ``Text``, never
as markup, and every string a person reads goes through ``visible``: controls, bidirectional
overrides and invisible characters show as ``\\x9b`` / ``\\u202e`` (log lines too, unless
the caller asks for ``--raw``).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn

from opsconsole.core import text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from opsconsole.core.views import JobView, LogLine

STATE_STYLES = text.STATE_STYLES
visible = text.visible


@cache
def console() -> Console:
    from rich.console import Console

    # piped output keeps long rows on one line, for grep and friends
    return Console(highlight=False, soft_wrap=False, width=None if is_terminal() else 200)


def is_terminal() -> bool:
    return sys.stdout.isatty()


def emit_json(obj: Any) -> None:
    """One JSON document on one line: unsafe characters ``\\uXXXX``-escaped (NDJSON-safe)."""
    sys.stdout.write(text.to_json(obj) + "\n")
    sys.stdout.flush()


def plain(value: Any) -> Text:
    from rich.text import Text

    return Text("" if value is None else visible(str(value)))


def styled_state(state: str) -> Text:
    from rich.text import Text

    return Text(state, style=STATE_STYLES.get(state, ""))


def ago(ts: datetime | None, now: datetime | None = None) -> str:
    return text.ago(ts, now or datetime.now(UTC))


fmt_duration = text.duration


PIPE_WIDTH = 200
"""Columns a piped table may use before Rich folds its cells (the piped console's width)."""


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    rows = list(rows)
    if not is_terminal() and title is None:
        lines = plain_table(columns, rows)
        if lines is not None:
            sys.stdout.write("".join(ln + "\n" for ln in lines))
            sys.stdout.flush()
            return
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, box=None, header_style="bold", pad_edge=False, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for row in rows:
        t.add_row(*[cell if isinstance(cell, Text) else plain(cell) for cell in row])
    rows_out(t)


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str] | None:
    """A piped table's lines without Rich (a script reading rows should not pay for Rich):
    the same text as Rich's layout (two spaces between left-aligned columns, trailing blanks
    cut). None when Rich is needed: a cell that is not one line of printable ASCII (wide
    characters, escapes) or rows wider than ``PIPE_WIDTH``, where Rich folds cells."""
    cells = [list(columns)]
    for row in rows:
        out = []
        for cell in row:
            value = getattr(cell, "plain", None)  # a Rich Text: its characters, unstyled
            value = ("" if cell is None else visible(str(cell))) if value is None else value
            if not (value.isascii() and value.isprintable()):
                return None
            out.append(value)
        cells.append(out)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    if sum(widths) + 2 * (len(widths) - 1) > PIPE_WIDTH:
        return None
    return ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]


def rows_out(renderable: Any) -> None:
    """Print a table; piped, without the padding Rich puts after the last column (a reader
    of rows, ``grep`` or ``diff`` wants none)."""
    if is_terminal():
        console().print(renderable)
        return
    with console().capture() as captured:
        console().print(renderable)
    sys.stdout.write("".join(ln.rstrip() + "\n" for ln in captured.get().splitlines()))
    sys.stdout.flush()


def note(message: str, *, multiline: bool = False) -> None:
    """A line for the person on stderr (``opsconsole: ...``), shown escaped like stdout."""
    sys.stderr.write(f"opsconsole: {visible(message, multiline=multiline)}\n")
    sys.stderr.flush()


def warn(message: str) -> None:
    note(f"warning: {message}")


def failure(view: JobView, lines: Sequence[LogLine]) -> None:
    """Why a waited-for job did not succeed, on stderr: its error and its last log lines
    (stored masked; shown escaped), so the reason is where the operator is looking."""
    state = view.state.value
    message = str((view.error or {}).get("message") or "").strip()
    head = f"job {view.id} ({view.template}) ended {state}"
    note(head + (f": {' '.join(visible(message, multiline=True).split())}" if message else ""))
    # the job's own output says why; the worker's notes (attempt started/ended) only when
    # there is no output at all, since the head line above already gives the end's reason
    lines = [ln for ln in lines if ln.stream != "meta"] or list(lines)
    if lines:
        note(f"last {len(lines)} log line(s):")
        for ln in lines:
            sys.stderr.write(f"  {visible(ln.text)}\n")
    note(f"whole log: opsconsole logs {view.id}")


def line(message: str = "", style: str | None = None, *, multiline: bool = False) -> None:
    from rich.text import Text

    console().print(Text(visible(message, multiline=multiline), style=style or ""))


def job_summary(view: JobView) -> None:
    """Short confirmation after submit/cancel/retry."""
    from rich.text import Text

    t = Text()
    t.append(view.id, style="bold")
    t.append(f"  {visible(view.template)}  ")
    t.append_text(styled_state(view.state.value))
    if view.state.value == "scheduled":
        t.append(f"  runs {ago(view.run_at)}")
    if view.depends_on:
        t.append("  after " + visible(", ".join(view.depends_on)))
    console().print(t)


def job_detail(view: JobView) -> None:
    from rich.table import Table
    from rich.text import Text

    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    fields: list[tuple[str, Any]] = [
        ("id", view.id),
        ("template", view.template),
        ("state", styled_state(view.state.value)),
        *([("waits", view.frozen)] if view.frozen else []),
        *([("team", view.team)] if view.team else []),
        *(
            [("gate", "broken (break-glass): see opsconsole reviews list")]
            if view.break_glass
            else []
        ),
        ("priority", f"{view.to_dict()['priority_name']} ({view.priority})"),
        ("attempts", f"{view.attempts} (retries allowed: {view.max_retries})"),
        ("submitted", f"{view.created_at:%Y-%m-%d %H:%M:%S}Z by {view.submitted_by}"),
        ("run at", f"{view.run_at:%Y-%m-%d %H:%M:%S}Z ({ago(view.run_at)})"),
    ]
    if view.started_at:
        on = f" on {view.worker}" if view.worker else ""
        fields.append(("started", f"{view.started_at:%Y-%m-%d %H:%M:%S}Z{on}"))
    if view.finished_at:
        fields.append(("finished", f"{view.finished_at:%Y-%m-%d %H:%M:%S}Z"))
        fields.append(("duration", fmt_duration(view.duration_s)))
    if view.exit_code is not None:
        fields.append(("exit code", view.exit_code))
    if view.progress is not None or view.step:
        fields.append(("progress", f"{view.progress or 0}% {view.step or ''}".strip()))
    if view.depends_on:
        fields.append(("depends on", ", ".join(view.depends_on)))
    if view.tags:
        fields.append(("tags", ", ".join(view.tags)))
    if view.concurrency_key:
        fields.append(("lock", view.concurrency_key))
    if view.timeout_s:
        fields.append(("timeout", fmt_duration(view.timeout_s)))
    if view.dry_run:
        fields.append(("dry run", "yes"))
    for k, v in view.params.items():
        fields.append((f"param {k}", json.dumps(v) if not isinstance(v, str) else v))
    if view.result is not None:
        fields.append(("result", json.dumps(view.result, ensure_ascii=False)))
    if view.error:
        message = visible(str(view.error.get("message", "")), multiline=True)
        fields.append(("error", Text(message, style="red")))
    if view.log_dropped:
        fields.append(("log", f"{view.log_lines} lines, {view.log_dropped} truncated"))
    fields.append(
        (
            "can",
            ", ".join(a for a, ok in (("cancel", view.can_cancel), ("retry", view.can_retry)) if ok)
            or "-",
        )
    )
    for k, v in fields:
        t.add_row(k, v if isinstance(v, Text) else plain(v))
    rows_out(t)
    if view.events:
        table(
            "events",
            ["when", "event", "state", "by", "message"],
            [
                (f"{e.ts:%H:%M:%S}", e.kind, styled_state(e.state or ""), e.actor, e.message)
                for e in view.events
            ],
        )


class LogFormatter(logging.Formatter):
    """The worker's log on stderr: a record can quote a job's error or a traceback of a
    handler, so unsafe characters are shown escaped (a traceback keeps its lines)."""

    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record), multiline=True)


def log_lines(lines: Iterable[LogLine], *, raw: bool = False) -> None:
    out = sys.stdout
    for ln in lines:
        shown = ln.text if raw else visible(ln.text)
        if ln.stream == "meta":
            shown = f"--- {shown} ---"
        out.write(shown + "\n")
    out.flush()


def stopped_following(job_id: str) -> NoReturn:
    """Ctrl-C while following a job: say that the job runs on and how to stop it, exit 130."""
    import typer

    from opsconsole.cli.exit_codes import ExitCode

    sys.stderr.write("\n")
    note(
        f"stopped following; job {job_id} keeps running (Ctrl-C does not cancel it): "
        f"cancel it with opsconsole jobs cancel {job_id}"
    )
    raise typer.Exit(ExitCode.INTERRUPTED)
