"""Terminal and data hygiene of everything the CLI prints: unsafe characters (controls,
bidirectional overrides, invisible format characters) are shown escaped on screen and
escaped as ``\\uXXXX`` in JSON, which still decodes to the exact original text."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from cli_support import Cli, as_json, ok, one_error_line, submit
from support import write_template

from opsconsole.cli import output
from opsconsole.cli.output import LogFormatter
from opsconsole.core.text import UNSAFE_MULTILINE

pytestmark = pytest.mark.usefixtures("forget_handlers")

RLO = "\u202e"  # right-to-left override: "invoice_\u202egnp.exe" reads "invoice_exe.png"
CSI = "\x9b"  # the 8-bit control sequence introducer: "\x9b2J" clears a VT220's screen


def raw_unsafe(text: str) -> list[str]:
    """The unsafe characters left raw in ``text`` (newlines are a sink's own)."""
    return UNSAFE_MULTILINE.findall(text)


@pytest.fixture
def hostile(catalog: Path) -> str:
    """A Python handler whose log line carries U+202E and whose error carries U+009B."""
    module = f"handlers_{uuid.uuid4().hex[:10]}"
    (catalog / f"{module}.py").write_text(
        textwrap.dedent(
            """
            def run(ctx):
                ctx.log("attached: invoice_\\u202egnp.exe")
                raise RuntimeError("disk \\x9b2J full")
            """
        )
    )
    write_template(catalog, "hostile", f"runner: python\nhandler: {module}:run\n")
    return "hostile"


@pytest.fixture
def hostile_job(cli: Cli, hostile: str) -> str:
    """The hostile job, run to its end by a real worker pool."""
    job = submit(cli, hostile)["id"]
    ok(cli("worker", "--once"), 1)
    return job


def test_json_escapes_a_handlers_c1_control_and_decodes_back_to_it(
    cli: Cli, hostile_job: str
) -> None:
    out = ok(cli("jobs", "show", hostile_job, "--json")).stdout
    assert CSI not in out
    assert "\\u009b2J" in out
    shown = json.loads(out)
    assert shown["state"] == "failed"
    assert f"disk {CSI}2J full" in shown["error"]["message"]  # the exact value, decoded


def test_logs_show_a_handlers_bidi_override_escaped(cli: Cli, hostile_job: str) -> None:
    out = ok(cli("logs", hostile_job)).stdout
    assert RLO not in out
    assert "attached: invoice_\\u202egnp.exe" in out.splitlines()
    assert RLO in ok(cli("logs", hostile_job, "--raw")).stdout  # --raw is verbatim, on request


def test_every_view_of_the_hostile_job_is_clean(cli: Cli, hostile_job: str) -> None:
    for args in (
        ("jobs", "show", hostile_job),
        ("jobs", "list"),
        ("events", "--job", hostile_job),
        ("logs", hostile_job),
    ):
        out = ok(cli(*args)).stdout
        assert raw_unsafe(out) == [], args
    assert "disk \\x9b2J full" in ok(cli("jobs", "show", hostile_job)).stdout
    for args in (
        ("jobs", "show", hostile_job, "--json"),
        ("jobs", "list", "--json"),
        ("events", "--job", hostile_job, "--json"),
    ):
        out = ok(cli(*args)).stdout
        assert raw_unsafe(out.rstrip("\n")) == [], args
        for line in out.splitlines():
            json.loads(line)


def test_json_keeps_ordinary_non_ascii_readable_and_round_trips(cli: Cli, echo: str) -> None:
    value = f"café 日本 ok{RLO}\u2028{CSI}\u200b\U000e0041 👍\u200d"
    job = submit(cli, echo, "-p", f"msg={value}")["id"]
    out = ok(cli("jobs", "show", job, "--json")).stdout
    assert "café 日本" in out and "👍\u200d" in out  # readable, not \u-escaped
    assert "\\u202e\\u2028\\u009b\\u200b\\udb40\\udc41" in out
    assert raw_unsafe(out.rstrip("\n")) == []
    assert json.loads(out)["params"]["msg"] == value


def test_events_follow_json_is_one_clean_object_per_line(cli: Cli, echo: str) -> None:
    job = submit(cli, echo)["id"]
    reason = f"line one\u2028line two{RLO}\x85"
    ok(cli("jobs", "cancel", job, "--reason", reason))
    out = ok(cli("events", "--job", job, "--json")).stdout
    lines = out.splitlines()
    assert len(lines) == 2  # U+2028 and NEL split no line of the stream
    assert raw_unsafe(out.rstrip("\n")) == []
    assert json.loads(lines[-1])["message"].endswith(reason)


def test_error_lines_show_what_the_user_typed_escaped(cli: Cli, echo: str) -> None:
    line = one_error_line(ok(cli("jobs", "show", f"zz{RLO}{CSI}2J"), 3))
    assert raw_unsafe(line) == []
    assert "zz\\u202e\\x9b2" in line.lower()  # ids are case-insensitive
    line = one_error_line(ok(cli("templates", "show", f"nope{RLO}"), 3))
    assert raw_unsafe(line) == []


def test_templates_show_hostile_catalog_text_escaped(cli: Cli, catalog: Path) -> None:
    write_template(
        catalog,
        "spoof",
        'description: "deploy\\u202e to prod\\x1b]0;pwned\\x07"\n'
        "runner: shell\ncommand: [echo, '{{ env }}']\n"
        'params:\n  env: {type: string, default: "d\\u2066ev", description: "x\\x9by"}\n',
    )
    (catalog / "templates" / f"broken{RLO}.yaml").write_text("name: [unclosed\n")
    listed = ok(cli("templates", "list"))
    assert raw_unsafe(listed.stdout) == [] and raw_unsafe(listed.stderr) == []
    assert "deploy\\u202e to prod\\x1b]0;pwned\\x07" in listed.stdout
    assert "broken\\u202e.yaml" in listed.stderr
    shown = ok(cli("templates", "show", "spoof")).stdout
    assert raw_unsafe(shown) == []
    assert "d\\u2066ev" in shown and "x\\x9by" in shown
    data = as_json(cli("templates", "list", "--json"))
    assert data["templates"][0]["description"] == "deploy\u202e to prod\x1b]0;pwned\x07"


def test_locks_show_a_hostile_concurrency_key_escaped(cli: Cli, catalog: Path) -> None:
    write_template(
        catalog,
        "locked",
        "runner: shell\ncommand: ['true']\n"
        "concurrency: {key: 'deploy-{{ env }}', limit: 1}\n"
        "params:\n  env: {type: string, required: true}\n",
    )
    submit(cli, "locked", "-p", f"env=prod{RLO}")
    out = ok(cli("locks")).stdout
    assert raw_unsafe(out) == []
    assert "deploy-prod\\u202e" in out
    assert as_json(cli("locks", "--json"))["locks"][0]["key"] == f"deploy-prod{RLO}"
    for args in (("stats",), ("health",), ("status",)):
        result = cli(*args)
        assert raw_unsafe(result.stdout) == [] and raw_unsafe(result.stderr) == [], args


def test_the_workers_log_shows_a_quoted_error_and_its_traceback_escaped() -> None:
    try:
        raise RuntimeError(f"disk {CSI}2J full{RLO}")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "opsconsole.engine.pool", logging.ERROR, __file__, 1, "job %s crashed", ("j1",), exc_info
    )
    out = LogFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert raw_unsafe(out) == []
    assert out.startswith("ERROR opsconsole.engine.pool: job j1 crashed\nTraceback")
    assert out.endswith("RuntimeError: disk \\x9b2J full\\u202e")  # the traceback keeps its lines


@pytest.mark.parametrize("verbose", [False, True])
def test_a_library_error_logged_during_a_command_is_one_line_without_v(
    verbose: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a library logs during a command (SQLAlchemy's pool after a Ctrl-C) is one line
    on stderr, escaped, with the exception's type and message; the traceback only with -v."""
    from opsconsole.cli.session import OneLineLog

    try:
        raise RuntimeError(f"the connection is closed{RLO}\nsecond line")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "sqlalchemy.pool", logging.ERROR, __file__, 1, "Exception during %s", ("reset",), exc_info
    )
    handler = OneLineLog()
    handler.verbose = verbose
    handler.handle(record)
    said = capsys.readouterr().err
    assert raw_unsafe(said) == []
    first = "opsconsole: Exception during reset (RuntimeError: the connection is closed\\u202e)"
    if verbose:
        assert said.startswith(first + "\nTraceback (most recent call last):\n")
        assert said.endswith("RuntimeError: the connection is closed\\u202e\nsecond line\n")
    else:
        assert said == first + "\n"


def rich_table_lines(columns: list[str], rows: list[list[object]]) -> list[str]:
    """What Rich prints for a piped table (the layout ``output.plain_table`` must match)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    t = Table(box=None, header_style="bold", pad_edge=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for row in rows:
        t.add_row(*[c if isinstance(c, Text) else Text("" if c is None else str(c)) for c in row])
    console = Console(highlight=False, soft_wrap=False, width=output.PIPE_WIDTH)
    with console.capture() as captured:
        console.print(t)
    return [ln.rstrip() for ln in captured.get().splitlines()]


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [["j1", "hello", None, 5, ""]],
        [["j1", "a b  c", "queued", 12345, "x,y"], ["j22222", "", "running", 0, None]],
        [["j1", "t", "x" * 60, 1, "y" * 40], ["j2", "t2", "z", 22, "end "]],
    ],
    ids=["empty", "one", "two", "long"],
)
def test_a_piped_table_is_laid_out_as_rich_lays_it_out(rows):
    from rich.text import Text

    columns = ["ID", "TEMPLATE", "STATE", "PRI", "TAGS"]
    rows = [[Text(c, style="cyan") if c == "queued" else c for c in r] for r in rows]
    assert output.plain_table(columns, rows) == rich_table_lines(columns, rows)


@pytest.mark.parametrize(
    "cell",
    ["日本語", "tab\there", "x" * 250],
    ids=["wide", "tab", "too-wide"],
)
def test_a_piped_table_leaves_what_rich_would_fold_or_measure_to_rich(cell):
    assert output.plain_table(["A", "B"], [["x", cell]]) is None
