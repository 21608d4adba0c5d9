"""A multi-line secret (an SSH key given with ``-p key=@FILE``) printed by a real job, plain,
as Python ``repr`` and as JSON, never reaches ``logs``, ``jobs show``, ``events`` or the
store's files: every line of it is masked, and so are its escaped forms."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cli_support import ok, submit
from support import wait_until, write_template

from opsconsole.core.service import OpsService

PRINTS = f"""\
printf '%s\\n' "$SSH_KEY" | cat
{sys.executable} -c 'import os; print(repr(os.environ["SSH_KEY"]))'
{sys.executable} -c 'import json, os; print(json.dumps({{"key": os.environ["SSH_KEY"]}}))'
{sys.executable} -c 'import os; print(os.environ["SSH_KEY"].splitlines())'
"""


@pytest.fixture
def ssh_key(tmp_path: Path) -> str:
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption()
    )
    return pem.decode()


@pytest.fixture
def leaky(catalog: Path) -> str:
    """A job that prints its key every way a careless script might."""
    write_template(
        catalog,
        "leaky",
        "runner: shell\n"
        f"command: [sh, -c, {json.dumps(PRINTS)}]\n"
        "env: {SSH_KEY: '{{ key }}'}\n"
        "params:\n  key: {type: string, secret: true, required: true}\n",
    )
    return "leaky"


def test_no_line_of_a_key_reaches_any_output_or_the_store_files(
    cli, leaky, ssh_key: str, service: OpsService, start_pool, db_path: Path, tmp_path: Path
):
    key_file = tmp_path / "id_ed25519"
    key_file.write_text(ssh_key)
    lines = ssh_key.strip().splitlines()
    assert len(lines) >= 5 and lines[0] == "-----BEGIN OPENSSH PRIVATE KEY-----"
    start_pool(slots=1)
    job = submit(cli, leaky, "-p", f"key=@{key_file}")["id"]
    wait_until(lambda: service.get(job).state.value == "succeeded", timeout=60)

    log = ok(cli("logs", job)).stdout
    printed = [p for p in log.splitlines() if not p.startswith("--- attempt")]
    # the job did print its key: each line, then repr, JSON and the list of lines, all masked
    assert printed[: len(lines)] == ["***"] * len(lines), log
    assert printed[len(lines) :] == ["'***'", '{"key": "***"}', str(["***"] * len(lines))], log
    shown = {
        "logs": log,
        "logs --raw": ok(cli("logs", job, "--raw")).stdout,
        "jobs show": ok(cli("jobs", "show", job)).stdout,
        "jobs show --json": ok(cli("jobs", "show", job, "--json")).stdout,
        "events": ok(cli("events", "--job", job)).stdout,
        "events --json": ok(cli("events", "--job", job, "--json")).stdout,
    }
    for where, text in shown.items():
        for line in lines:
            assert line not in text, (where, line)
            assert json.dumps(line)[1:-1] not in text, (where, line)

    # the store's own bytes, while it is open (nothing checkpointed yet): the write-ahead
    # log holds every page written since the store was opened
    wal = db_path.with_name(db_path.name + "-wal")
    assert wal.exists() and wal.stat().st_size > 0
    raw = db_path.read_bytes() + wal.read_bytes()
    assert b'{"key": "***"}' in raw  # the check can see what the job printed
    for line in lines:
        assert line.encode() not in raw, line
