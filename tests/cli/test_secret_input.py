"""Secrets given without the screen or shell history: @FILE, @- (stdin), a no-echo prompt."""

from __future__ import annotations

import os
from pathlib import Path

from cli_support import as_json, installed, ok, on_a_terminal, one_error_line

from opsconsole.config import Settings
from opsconsole.core.service import OpsService
from opsconsole.core.store import queries

SECRET = "s3cr3t-from-elsewhere"


def _secret_of(service: OpsService, job_id: str) -> str:
    """Decrypt the stored secret, as the worker that runs the job does."""
    row, _ = queries.get(service.db, job_id)
    return service.box.open(row["secret_blob"])["token"]


def test_a_secret_read_from_a_file(cli, secret, service: OpsService, tmp_path: Path):
    path = tmp_path / "token"
    path.write_text(SECRET + "\n")
    job = as_json(ok(cli("submit", secret, "-p", f"token=@{path}", "--json")))
    assert job["params"]["token"] == "***"
    assert _secret_of(service, job["id"]) == SECRET


def test_a_secret_read_from_stdin(cli, secret, service: OpsService):
    job = as_json(ok(cli("submit", secret, "-p", "token=@-", "--json", input=SECRET + "\n")))
    assert _secret_of(service, job["id"]) == SECRET


def test_an_unreadable_secret_file_is_one_line_and_nothing_is_stored(cli, secret, service):
    before = service.counts()
    line = one_error_line(ok(cli("submit", secret, "-p", "token=@/nonexistent/token"), 2))
    assert "parameter 'token': cannot read /nonexistent/token" in line
    assert service.counts() == before


def test_a_missing_secret_is_asked_for_without_echo_on_a_terminal(
    settings: Settings, secret: str, service: OpsService
):
    """The installed command on a real pseudo-terminal: the prompt, no echo, the job stored."""
    argv = installed(
        settings,
        "submit",
        secret,
        "--json",
    )
    seen, code, answered = on_a_terminal(
        argv, b"not echoed", lambda fd: os.write(fd, SECRET.encode() + b"\n"), timeout=30
    )
    assert answered, seen
    assert code == 0, seen
    assert SECRET.encode() not in seen  # never echoed to the screen
    [job] = service.queue()
    assert job.params["token"] == "***"
    assert _secret_of(service, job.id) == SECRET
