"""Helpers for the CLI tests (tests/cli): exit codes, JSON output, the one error line."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from typer.testing import Result

Cli = Callable[..., Result]


def ok(result: Result, code: int = 0) -> Result:
    """Assert the exit code, showing both streams when it is wrong."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def submit(cli: Cli, template: str, *args: str) -> dict[str, Any]:
    """Submit through the CLI and return the job's ``--json`` shape."""
    return as_json(cli("submit", template, *args, "--json"))


def one_error_line(result: Result) -> str:
    """The single ``opsconsole: error:`` line of a refused command (and nothing else)."""
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("opsconsole: error: "), lines[0]
    return lines[0]
