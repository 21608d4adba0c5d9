"""The key that seals secrets: a key file others can read is refused, a lost or different
key is refused (never silently replaced), and ``db reset-key`` recovers from a lost one."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cli_support import as_json, ok, one_error_line, submit

from opsconsole.config import Settings

SECRET = "zebra-S3CRET-4242-quokka"


def queued_secret_job(cli, secret: str, tmp_path: Path) -> str:
    path = tmp_path / "token"
    path.write_text(SECRET)
    return submit(cli, secret, "-p", f"token=@{path}")["id"]


def state_of(cli, job: str) -> str:
    return as_json(cli("jobs", "show", job, "--json"))["state"]


def test_a_key_file_others_can_read_is_refused(cli, secret, settings: Settings, tmp_path: Path):
    queued_secret_job(cli, secret, tmp_path)
    key = Path(settings.home) / "secret.key"
    key.chmod(0o644)
    line = one_error_line(ok(cli("submit", secret, "-p", "token=abcdef"), 2))
    assert line == (
        f"opsconsole: error: the secret key file {key} is readable by every local user "
        f"(mode 0644): run `chmod 600 {key}`"
    )
    assert line in one_error_line(ok(cli("worker", "--once"), 2))


def test_a_deleted_key_stops_the_worker_before_it_fails_the_jobs(
    cli, secret, settings: Settings, tmp_path: Path
):
    """Today the worker silently makes a new key, and the queued job fails: 'cannot decrypt'."""
    job = queued_secret_job(cli, secret, tmp_path)
    key = Path(settings.home) / "secret.key"
    key.unlink()
    line = one_error_line(ok(cli("worker", "--once"), 5))
    assert f"the key file {key} is missing" in line
    assert "opsconsole db reset-key" in line
    assert state_of(cli, job) == "queued"  # not failed: it runs once the key is back
    assert not key.exists()
    line = one_error_line(ok(cli("submit", secret, "-p", "token=abcdef"), 5))
    assert f"the key file {key} is missing" in line
    health = json.loads(ok(cli("health", "--json"), 1).stdout)
    [check] = [c for c in health["checks"] if c["name"] == "key"]
    assert check["ok"] is False and "is missing" in check["detail"]


def test_another_host_s_key_is_refused(cli, secret, settings: Settings, tmp_path: Path):
    job = queued_secret_job(cli, secret, tmp_path)
    key = Path(settings.home) / "secret.key"
    mine = key.read_text()
    key.write_text(base64.urlsafe_b64encode(os.urandom(32)).decode() + "\n")
    line = one_error_line(ok(cli("worker", "--once"), 5))
    assert "its secrets are sealed with key sha256:" in line
    assert f"not with key file {key} (sha256:" in line
    assert state_of(cli, job) == "queued"
    key.write_text(mine)  # the right key restored: the job runs
    ok(cli("worker", "--once"), 1)  # the template's command is `false`
    assert state_of(cli, job) == "failed"


def test_reset_key_after_a_lost_key(cli, secret, echo, settings: Settings, tmp_path: Path):
    stranded = queued_secret_job(cli, secret, tmp_path)
    plain = submit(cli, echo)["id"]
    (Path(settings.home) / "secret.key").unlink()
    line = one_error_line(ok(cli("db", "reset-key"), 2))  # no terminal to confirm on
    assert "add --yes" in line
    out = as_json(cli("db", "reset-key", "--yes", "--json"))
    assert out["cancelled"] == [stranded]
    assert out["fingerprint"].startswith("sha256:")
    assert state_of(cli, stranded) == "cancelled"
    assert state_of(cli, plain) == "queued"
    ok(cli("worker", "--once"))  # the new key is the store's: the worker runs
    assert state_of(cli, plain) == "succeeded"
    again = as_json(cli("jobs", "retry", stranded, "-p", "token=fresh-secret", "--json"))
    assert again["state"] == "queued"
    text = ok(cli("db", "reset-key", "--yes")).stdout
    assert f"secrets are now sealed with key {out['fingerprint']}" in text
    assert "cancelled" not in text
