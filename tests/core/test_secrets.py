"""Secrets: masked in every view, encrypted at rest, gone when the job ends, redacted in logs,
asked for again on a retry."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import write_template

from opsconsole.config import Settings
from opsconsole.core.errors import InvalidParams, StoreUnavailable
from opsconsole.core.files import access_for
from opsconsole.core.identity import os_user
from opsconsole.core.secrets import (
    KEY_FINGERPRINT,
    MASK,
    MIN_REDACT_LEN,
    Redactor,
    SecretBox,
    fingerprint,
    load_key,
    mask_params,
    split_secrets,
)
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store import claim as claim_store
from opsconsole.core.store import feed
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database

S = JobState
SECRET = "zebra-S3CRET-4242-quokka"


def test_mask_and_split():
    params = {"user": "ann", "token": SECRET, "empty": ""}
    assert mask_params(params, {"token", "empty"}) == {"user": "ann", "token": MASK, "empty": ""}
    public, secret = split_secrets(params, {"token", "empty"})
    assert public == {"user": "ann", "token": MASK, "empty": ""}
    assert secret == {"token": SECRET}


def test_redactor():
    red = Redactor([SECRET, "zebra", "ab", None])
    assert red
    assert red.text(f"token={SECRET}!") == "token=***!"  # the longer secret masked whole
    assert red.text("a zebra crossing") == "a *** crossing"
    assert red.text("ab stays: too short to redact") == "ab stays: too short to redact"
    value = {"out": [f"x{SECRET}", 3, {"k": "zebra"}], SECRET: None}
    assert red.value(value) == {"out": ["x***", 3, {"k": "***"}], "***": None}
    assert not Redactor([])
    assert Redactor([]).value({"a": SECRET}) == {"a": SECRET}


PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDtF0k6rB7ZcGz1nq7Qe1W0bA9d4h8m9uZ0m3ScD4I9YwAAAJgq9Ag1KvQI\n"
    "AAAAC3NzaC1lZDI1NTE5AAAAIO0XSTqsHtlwbPWertB7VbRsD13iHyb25nSbdJwPgj1j\n"
    "Zw==\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


def test_every_line_of_a_multi_line_secret_is_masked():
    red = Redactor([PEM])
    for line in PEM.splitlines():
        assert red.text(f"> {line} <") == "> *** <"
        assert red.text(f"  {line}  ") == "  ***  "
    assert red.text(PEM) == MASK
    shuffled = "\n".join(reversed(PEM.splitlines()))  # lines out of order: each still masked
    assert red.text(shuffled) == "\n".join([MASK] * len(PEM.splitlines()))


def test_the_escaped_forms_a_program_prints_are_masked():
    red = Redactor([PEM, 'tab\there "quoted" \\ back-slashed\nand\u00e9'])
    assert red.text(repr(PEM)) == "'***'"  # print(repr(key)): one line, backslash-n inside
    assert red.text(json.dumps({"key": PEM})) == '{"key": "***"}'
    assert red.text(json.dumps(PEM, ensure_ascii=False)) == '"***"'
    assert red.text(str(PEM.encode())) == "b'***'"
    # each line of a secret in its escaped form, too
    assert red.text(json.dumps('tab\there "quoted" \\ back-slashed')) == '"***"'
    assert red.text(repr("and\u00e9")) == "'***'"
    assert red.text(json.dumps("and\u00e9")) == '"***"'


def test_short_and_blank_lines_of_a_secret_are_left_alone():
    red = Redactor(["first-line-of-it\n\n  \nab\nlast-line-of-it"])
    assert MIN_REDACT_LEN == 3
    assert red.text("ab  cd") == "ab  cd"  # masking these would blank ordinary output
    assert red.text("x first-line-of-it y") == "x *** y"


def test_secret_box_round_trip_and_wrong_key(home: Path):
    box = SecretBox(load_key(home))
    token = box.seal({"token": SECRET})
    assert SECRET not in token
    assert box.open(token) == {"token": SECRET}
    assert box.seal({}) is None
    assert box.open(None) == {}
    other = SecretBox(load_key(home / "elsewhere"))
    with pytest.raises(InvalidParams, match="cannot decrypt"):
        other.open(token)


def test_load_key_creates_a_private_key_file_once(home: Path):
    key = load_key(home)
    path = home / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(home) == key
    assert load_key(home, configured=key.decode()) == key
    with pytest.raises(InvalidParams, match="secret_key setting: not a valid Fernet key"):
        load_key(home, configured="too-short")
    path.write_text("garbage\n")
    with pytest.raises(InvalidParams, match="not a valid Fernet key"):
        load_key(home)


def test_a_key_file_others_can_read_is_refused(home: Path):
    key = load_key(home)
    path = home / "secret.key"
    path.chmod(0o644)
    with pytest.raises(InvalidParams) as err:
        load_key(home)
    assert str(err.value) == (
        f"the secret key file {path} is readable by every local user (mode 0644): "
        f"run `chmod 600 {path}`"
    )
    path.chmod(0o640)
    with pytest.raises(InvalidParams, match=r"readable by group .* \(mode 0640\): run `chmod 600"):
        load_key(home)
    # shared with the store's group on purpose: fine
    assert load_key(home, access=access_for(str(path.stat().st_gid))) == key
    path.chmod(0o600)
    assert load_key(home) == key


def test_a_new_key_file_is_private_under_the_usual_umask(home: Path, usual_umask: None):
    load_key(home / "fresh")
    assert stat.S_IMODE((home / "fresh").stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "fresh" / "secret.key").stat().st_mode) == 0o600


def test_load_key_when_many_start_at_once(tmp_path: Path):
    """Workers and submitters starting together all get the one key, never a half-written one."""
    for round_ in range(20):
        home = tmp_path / f"home{round_}"
        barrier = threading.Barrier(8)
        keys: list[bytes] = []
        errors: list[Exception] = []

        def load(
            home: Path = home,
            barrier: threading.Barrier = barrier,
            keys: list[bytes] = keys,
            errors: list[Exception] = errors,
        ) -> None:
            barrier.wait()
            try:
                keys.append(load_key(home))
            except Exception as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=load) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert errors == []
        assert len(keys) == 8
        assert set(keys) == {(home / "secret.key").read_bytes().strip()}


# -- end to end through the service and the store ------------------------------------------


@pytest.fixture
def deploy(catalog):
    write_template(
        catalog,
        "deploy",
        "runner: shell\ncommand: [echo, '{{ user }}', '{{ token }}']\n"
        "params:\n  user: {type: string}\n  token: {type: string, secret: true}\n",
    )
    return "deploy"


def store_bytes(db_path: Path) -> bytes:
    """The raw bytes of the SQLite file and its write-ahead log."""
    wal = db_path.with_name(db_path.name + "-wal")
    return db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_a_secret_never_reaches_views_or_the_store_file(clocked, deploy, db_path):
    job = clocked.submit(SubmitRequest(template="deploy", params={"user": "ann", "token": SECRET}))
    assert db_path.with_name(db_path.name + "-wal").exists()
    assert job.params == {"user": "ann", "token": MASK}
    shown = json.dumps(clocked.get(job.id, with_events=True).to_dict())
    assert SECRET not in shown
    assert '"token": "***"' in shown
    raw = store_bytes(db_path)
    assert b"ann" in raw  # the check can see plain parameters
    assert SECRET.encode() not in raw

    # the worker can open it while the job runs ...
    row = claim_store.claim(clocked.db, "w1", clocked.now(), 30)
    assert clocked.box.open(row["secret_blob"]) == {"token": SECRET}
    # ... and what the job logs is redacted before it is stored
    red = Redactor(clocked.box.open(row["secret_blob"]).values())
    out = [f"deploying as ann with {SECRET}", "done"]
    batch = [(clocked.now(), "out", red.text(line)) for line in out]
    assert feed.append_logs(clocked.db, job.id, 1, batch, cap=100)
    assert [x.text for x in clocked.logs_since(job.id)][1:] == ["deploying as ann with ***", "done"]

    job_store.finish(clocked.db, job.id, 1, S.FAILED, clocked.now(), values={})
    with clocked.db.read() as conn:
        assert job_store.fetch(conn, job.id)["secret_blob"] is None
    raw = store_bytes(db_path)
    assert b"deploying as ann with ***" in raw
    assert SECRET.encode() not in raw


def test_retry_asks_for_the_secret_again(clocked, deploy):
    job = clocked.submit(SubmitRequest(template="deploy", params={"user": "ann", "token": SECRET}))
    row = claim_store.claim(clocked.db, "w1", clocked.now(), 30)
    job_store.finish(clocked.db, job.id, row["attempts"], S.FAILED, clocked.now(), values={})
    with pytest.raises(InvalidParams, match="token") as err:
        clocked.retry(job.id)
    assert "secret" in str(err.value)
    assert clocked.get(job.id).state == S.FAILED

    again = clocked.retry(job.id, params={"token": "fresh-secret-value"})
    assert again.state == S.QUEUED
    assert again.params == {"user": "ann", "token": MASK}
    row = claim_store.claim(clocked.db, "w1", clocked.now(), 30)
    assert clocked.box.open(row["secret_blob"]) == {"token": "fresh-secret-value"}


def test_retry_names_a_required_secret_and_how_to_give_it(clocked, catalog):
    write_template(
        catalog,
        "login",
        "runner: shell\ncommand: [echo]\nparams:\n"
        "  token: {type: string, secret: true, required: true}\n"
        "  note: {type: string}\n",
    )
    job = clocked.submit(SubmitRequest(template="login", params={"token": SECRET, "note": MASK}))
    row = claim_store.claim(clocked.db, "w1", clocked.now(), 30)
    job_store.finish(clocked.db, job.id, row["attempts"], S.FAILED, clocked.now(), values={})
    with pytest.raises(InvalidParams, match=r"needs its secret parameters again.*-p token="):
        clocked.retry(job.id)
    # a public value that happens to read like the mask is kept, not asked for
    again = clocked.retry(job.id, params={"token": "fresh-secret-value"})
    assert again.params == {"token": MASK, "note": MASK}
    assert again.state == S.QUEUED


def test_a_secret_in_the_concurrency_key_is_refused(clocked, catalog):
    write_template(
        catalog,
        "leaky",
        "runner: shell\ncommand: [echo]\nparams:\n  token: {type: string, secret: true}\n"
        "concurrency: {key: 'k-{{ token }}'}\n",
    )
    with pytest.raises(InvalidParams, match="concurrency key may not use a secret") as err:
        clocked.submit(SubmitRequest(template="leaky", params={"token": SECRET}))
    assert SECRET not in str(err.value)


# -- the store's key: its fingerprint, a lost or different key, and recovering ---------------


def other_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def fresh_service(settings: Settings, **changes: object) -> OpsService:
    """Another process on the same store (a worker, the next CLI command)."""
    from dataclasses import replace

    return OpsService(replace(settings, **changes), Database(settings.db))


def recorded(db: Database) -> str | None:
    with db.read() as conn:
        return conn.execute(
            sa.text("SELECT value FROM store_meta WHERE key = :k"), {"k": KEY_FINGERPRINT}
        ).scalar()


def test_the_store_records_the_key_s_fingerprint_never_the_key(clocked, deploy, db_path, home):
    clocked.submit(SubmitRequest(template="deploy", params={"token": SECRET}))
    key = (home / "secret.key").read_bytes().strip()
    assert recorded(clocked.db) == fingerprint(key)
    assert fingerprint(key).startswith("sha256:") and len(fingerprint(key)) == 23
    assert key not in store_bytes(db_path)
    assert clocked.key_status() == f"{fingerprint(key)} seals this store's secrets"


def test_a_deleted_key_is_refused_not_made_again(clocked, deploy, settings, home):
    """Today's bug: a new key is made silently, and every queued secret job fails later."""
    job = clocked.submit(SubmitRequest(template="deploy", params={"token": SECRET}))
    (home / "secret.key").unlink()
    later = fresh_service(settings)
    try:
        with pytest.raises(StoreUnavailable) as err:
            later.submit(SubmitRequest(template="deploy", params={"token": "x" * 8}))
        line = str(err.value)
        assert line.startswith(f"store {clocked.db.describe()}: its secrets are sealed with key ")
        assert f"the key file {home / 'secret.key'} is missing" in line
        assert "OPSCONSOLE_SECRET_KEY" in line and "opsconsole db reset-key" in line
        assert "\n" not in line
        assert not (home / "secret.key").exists()
        assert [j.id for j in later.queue()] == [job.id]  # nothing stored, nothing failed
        with pytest.raises(StoreUnavailable, match="is missing"):
            later.key_status()
    finally:
        later.db.dispose()


def test_another_key_is_refused(clocked, deploy, settings, home):
    clocked.submit(SubmitRequest(template="deploy", params={"token": SECRET}))
    mine = recorded(clocked.db)
    stranger = other_key()
    for how in ({"secret_key": stranger}, {}):
        if not how:  # another host's key file copied over this one
            (home / "secret.key").write_text(stranger + "\n")
        later = fresh_service(settings, **how)
        try:
            with pytest.raises(StoreUnavailable) as err:
                later.box.seal({"token": "x"})
            origin = "the secret_key setting" if how else f"key file {home / 'secret.key'}"
            theirs = fingerprint(stranger.encode())
            assert f"sealed with key {mine}, not with {origin} ({theirs})" in str(err.value)
        finally:
            later.db.dispose()
    assert recorded(clocked.db) == mine


def test_reset_key_cancels_the_jobs_a_lost_key_strands(clocked, deploy, settings, home, echo):
    stranded = clocked.submit(SubmitRequest(template="deploy", params={"token": SECRET}))
    plain = clocked.submit(SubmitRequest(template="echo", params={"word": "hi"}))
    (home / "secret.key").unlink()
    later = fresh_service(settings)
    try:
        found, cancelled = later.reset_key()
        assert cancelled == [stranded.id]
        assert found == fingerprint((home / "secret.key").read_bytes())
        assert recorded(later.db) == found
        view = later.get(stranded.id, with_events=True)
        assert view.state == S.CANCELLED
        assert view.events[-1].actor == os_user()
        assert "sealed with a lost key" in view.events[-1].message
        assert f"opsconsole jobs retry {stranded.id} -p NAME=..." in view.events[-1].message
        assert later.get(plain.id).state == S.QUEUED  # no secret: nothing lost
        # the new key seals and opens; the stranded job is retried with its secret again
        again = later.retry(stranded.id, params={"token": "fresh-secret-value"})
        assert again.state == S.QUEUED
        assert later.reset_key()[1] == []  # nothing left to cancel
    finally:
        later.db.dispose()
