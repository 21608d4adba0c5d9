"""Terraform across hosts on one PostgreSQL store: the state in Terraform's ``pg`` backend,
the saved plan sealed in ``plans.content``, so a plan made on one host is applied on another.

Real parts: two ``opsconsole worker`` processes, each its own host identity and home (its own
instance directories), the Terraform binary, a private PostgreSQL cluster (``pg_url``, so these
run in the default run). The store's URL carries a password (the cluster trusts the socket and
never asks for it), so every place it must not reach can be searched for it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import wait_until
from tf_support import ENGINES, add_module, add_template, log_text, running_pool, submit, wait_state

from opsconsole.config import Settings, load_settings
from opsconsole.core import instances
from opsconsole.core.service import OpsService
from opsconsole.core.states import JobState
from opsconsole.core.store import instances as instance_store
from opsconsole.core.store import plans as plan_store
from opsconsole.core.store import tfstate
from opsconsole.core.store.db import Database

S = JobState
BIN = Path(sys.executable).parent / "opsconsole"
PASSWORD = "tf-h0sts-never-shown"
"""In the store's URL: Terraform gets it in PG_CONN_STR; nothing else may ever hold it."""
FAST = {"poll_interval": 0.1, "heartbeat_interval": 0.2, "lease": 3.0, "kill_grace": 0.5}

pytestmark = pytest.mark.slow


@pytest.fixture
def shared_url(pg_url: str) -> str:
    """A migrated PostgreSQL store whose URL holds a password."""
    url = sa.make_url(pg_url).set(password=PASSWORD).render_as_string(hide_password=False)
    db = Database(url)
    db.ensure_schema()
    db.dispose()
    return url


@pytest.fixture
def secret_key() -> str:
    """One secret key for every host (what seals a plan on one host opens it on another)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def host_settings(tmp_path: Path, host: str, catalog: Path, url: str, key: str) -> Settings:
    home = tmp_path / host
    home.mkdir(exist_ok=True)
    return load_settings(home=home, catalog=catalog, db=url, secret_key=key, **FAST)


@pytest.fixture
def operator(
    tmp_path: Path, catalog: Path, shared_url: str, secret_key: str
) -> Iterator[OpsService]:
    """The operator's service: submits and approves, runs nothing."""
    settings = host_settings(tmp_path, "operator", catalog, shared_url, secret_key)
    db = Database(settings.db)
    yield OpsService(settings, db)
    db.dispose()


class Host:
    """One ``opsconsole worker`` process standing for a host: its own home and host id."""

    def __init__(self, settings: Settings, host_id: str, engine: str = "binary") -> None:
        self.settings, self.host_id = settings, host_id
        self.out = Path(settings.home) / "worker.out"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSCONSOLE_", "PG"))}
        env.update(
            OPSCONSOLE_HOME=str(settings.home),
            OPSCONSOLE_DB=settings.db,
            OPSCONSOLE_CATALOG=str(settings.catalog),
            OPSCONSOLE_SECRET_KEY=settings.secret_key,
            OPSCONSOLE_HOST_ID=host_id,
            OPSCONSOLE_POLL_INTERVAL="0.1",
            OPSCONSOLE_HEARTBEAT_INTERVAL="0.2",
            OPSCONSOLE_KILL_GRACE="0.5",
            OPSCONSOLE_TERRAFORM="embedded" if engine == "embedded" else "auto",
        )
        with self.out.open("wb") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [str(BIN), "worker", "--workers", "1"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        """Stop it as an operator would (SIGTERM: drain, deregister, exit 0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        assert code == 0, self.out.read_text()

    def ran(self, svc: OpsService, job: str, attempt: int) -> bool:
        """Whether this process ran that attempt (a claim logs its worker, whose id holds
        the pid)."""
        starts = [ln for ln in log_text(svc, job).splitlines() if ln.startswith("attempt ")]
        return any(
            ln.startswith(f"attempt {attempt} started on ") and f":{self.proc.pid}:" in ln
            for ln in starts
        )


@pytest.fixture
def hosts(tmp_path: Path, catalog: Path, shared_url: str, secret_key: str) -> Iterator[list[Host]]:
    started: list[Host] = []
    yield started
    for host in started:
        if host.proc.poll() is None:
            host.proc.kill()
            host.proc.wait(timeout=10)


def state_in_store(url: str, template: str, name: str) -> dict[str, Any] | None:
    """The instance's state as Terraform's ``pg`` backend keeps it in the store."""
    db = Database(url)
    try:
        return tfstate.read_state(db, template, name)
    finally:
        db.dispose()


def store_text(url: str) -> str:
    """Every row of the tables a secret could slip into, as text, for a search."""
    db = Database(url)
    try:
        with db.read() as conn:
            return "\n".join(
                str(conn.execute(sa.text(f"SELECT t::text FROM {table} t")).scalars().all())
                for table in ("jobs", "job_events", "job_logs", "plans", "instances")
            )
    finally:
        db.dispose()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_plan_made_on_one_host_is_applied_on_another(
    engine: str,
    tmp_path: Path,
    catalog: Path,
    shared_url: str,
    secret_key: str,
    operator: OpsService,
    hosts: list[Host],
) -> None:
    add_module(catalog)
    add_template(catalog)
    one = host_settings(tmp_path, "host-1", catalog, shared_url, secret_key)
    two = host_settings(tmp_path, "host-2", catalog, shared_url, secret_key)
    hosts.append(Host(one, "host-1", engine))
    job = submit(operator, "infra", name="crosshost")
    assert wait_state(operator, job, S.AWAITING_APPROVAL, S.FAILED) == S.AWAITING_APPROVAL
    assert hosts[0].ran(operator, job, 1)
    hosts[0].stop()  # host 1 is gone before anyone approves: only host 2 can apply

    plan = plan_store.latest(operator.db, job)
    assert plan is not None and plan["status"] == "pending" and plan["summary"]["add"] == 3
    sealed = plan_store.content(operator.db, plan["id"])
    assert sealed is not None and not sealed.startswith(b"PK")  # sealed, not the zip itself
    opened = operator.box.open_bytes(sealed)
    assert hashlib.sha256(opened).hexdigest() == plan["hash"]
    assert PASSWORD.encode() not in opened  # the plan records the backend, not its conn_str
    ws1 = instances.workspace(one.home, "infra", "crosshost")
    ws2 = instances.workspace(two.home, "infra", "crosshost")
    assert Path(plan["file"]).parent == ws1 / instances.PLANS
    assert not ws2.exists()
    assert state_in_store(shared_url, "infra", "crosshost") is not None  # created by the plan

    operator.approve(job)
    hosts.append(Host(two, "host-2", engine))
    assert wait_state(operator, job, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED, log_text(operator, job)
    assert hosts[1].ran(operator, job, 2)
    hosts[1].stop()

    # the provisioners ran in host 2's directory, and nowhere else
    assert (ws2 / "third.txt").read_text().strip() == "third"
    assert not (ws1 / "first.txt").exists()
    # the state is PostgreSQL's: neither host has a state file of its own
    assert not (ws1 / instances.STATE).exists() and not (ws2 / instances.STATE).exists()
    state = state_in_store(shared_url, "infra", "crosshost")
    assert state is not None and state["serial"] >= 1
    assert {r["name"] for r in state["resources"]} == {"first", "second", "third"}
    assert state["outputs"]["url"]["value"] == "http://crosshost.test"
    row = instance_store.get(operator.db, "infra", "crosshost")
    assert row is not None and row["status"] == "applied" and row["serial"] == state["serial"]
    assert len(row["resources"]) == 3 and row["outputs"]["secret_url"] == "***"
    applied = plan_store.latest(operator.db, job)
    assert applied is not None and applied["id"] == plan["id"] and applied["status"] == "applied"
    assert plan_store.content(operator.db, plan["id"]) is None  # applied: its copy is dropped
    assert not list((ws2 / instances.PLANS).glob("restored-*"))  # the written-back copy is gone
    text = log_text(operator, job)
    assert "planned on another host" in text
    assert "terraform_data.third: Creation complete" in text

    # the connection string reached Terraform's environment only
    for where in (text, store_text(shared_url), *(h.out.read_text() for h in hosts)):
        assert PASSWORD not in where


def test_a_sealed_plan_that_is_not_the_approved_one_is_never_applied(
    tmp_path: Path, catalog: Path, shared_url: str, secret_key: str, operator: OpsService
) -> None:
    """The written-back file is checked against the approved hash: a sealed copy of another
    plan (a store row changed behind the approval) fails the job, and nothing is applied."""
    add_module(catalog)
    add_template(catalog)
    one = host_settings(tmp_path, "host-1", catalog, shared_url, secret_key)
    two = host_settings(tmp_path, "host-2", catalog, shared_url, secret_key)
    with running_pool(OpsService(one, operator.db)):
        job = submit(operator, "infra", name="swapped")
        assert wait_state(operator, job, S.AWAITING_APPROVAL, S.FAILED) == S.AWAITING_APPROVAL
    plan = plan_store.latest(operator.db, job)
    assert plan is not None
    other = operator.box.seal_bytes(b"PK not the plan that was approved")
    with operator.db.write() as conn:
        conn.execute(
            sa.text("UPDATE plans SET content = :content WHERE id = :id"),
            {"content": other, "id": plan["id"]},
        )
    operator.approve(job)
    with running_pool(OpsService(two, operator.db)):
        assert wait_state(operator, job, S.SUCCEEDED, S.FAILED) == S.FAILED
    assert "changed since it was planned" in (operator.get(job).error or {}).get("message", "")
    ws2 = instances.workspace(two.home, "infra", "swapped")
    assert not (ws2 / "first.txt").exists()
    assert not list((ws2 / instances.PLANS).glob("restored-*"))
    state = state_in_store(shared_url, "infra", "swapped")
    assert not (state or {}).get("resources")
    saved = plan_store.latest(operator.db, job)
    assert saved is not None and saved["status"] == "failed"


def test_an_instance_with_local_state_is_never_planned_anew_in_the_store(
    tmp_path: Path, catalog: Path, shared_url: str, secret_key: str, operator: OpsService
) -> None:
    """A host whose store moved from SQLite to PostgreSQL still holds the local state of
    what it applied: a run against the store would create it all again, so it is refused."""
    add_module(catalog)
    add_template(catalog, gated=False)
    local = host_settings(tmp_path, "host-1", catalog, f"sqlite:///{tmp_path / 'l.db'}", secret_key)
    db = Database(local.db)
    db.ensure_schema()
    try:
        before = OpsService(local, db)
        with running_pool(before):
            job = submit(before, "infra", name="moved")
            assert wait_state(before, job, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED
    finally:
        db.dispose()
    one = host_settings(tmp_path, "host-1", catalog, shared_url, secret_key)  # the same home
    with running_pool(OpsService(one, operator.db)):
        again = submit(operator, "infra", name="moved")
        assert wait_state(operator, again, S.SUCCEEDED, S.FAILED) == S.FAILED
    message = (operator.get(again).error or {}).get("message", "")
    assert "local Terraform state" in message and "\n" not in message
    assert "select -or-create=true infra.moved; terraform state push local.tfstate" in message
    assert state_in_store(shared_url, "infra", "moved") is None  # nothing planned in the store
    row = instance_store.get(operator.db, "infra", "moved")
    assert row is not None and row["status"] == "errored"


def test_the_state_lock_is_terraform_s_session_and_ends_with_it(
    tmp_path: Path, catalog: Path, shared_url: str, secret_key: str, operator: OpsService
) -> None:
    """Mid-apply the instance is locked in the store (any host sees it); cancelled, the lock
    is gone with Terraform's session, and the next job applies without any unlock."""
    add_module(catalog)
    add_template(catalog, gated=False)
    one = host_settings(tmp_path, "host-1", catalog, shared_url, secret_key)
    with running_pool(OpsService(one, operator.db)):
        job = submit(operator, "infra", name="held", pause=307)
        wait_until(lambda: "terraform_data.second: Creating" in log_text(operator, job), 90)
        assert tfstate.locked(operator.db, "infra", "held")
        assert not tfstate.locked(operator.db, "infra", "other")
        operator.cancel(job)
        assert wait_state(operator, job, S.CANCELLED, S.FAILED, S.SUCCEEDED) == S.CANCELLED
        assert not tfstate.locked(operator.db, "infra", "held")
        again = submit(operator, "infra", name="held")
        assert wait_state(operator, again, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED


LEAKY = """
resource "terraform_data" "leak" {
  provisioner "local-exec" { command = "echo conn=$PG_CONN_STR" }
}
"""


def test_a_provisioner_that_prints_the_connection_string_shows_it_masked(
    tmp_path: Path, catalog: Path, shared_url: str, secret_key: str, operator: OpsService
) -> None:
    """A provisioner inherits Terraform's environment: what it prints of the store's
    credentials reaches the log masked."""
    add_module(catalog, "leaky", LEAKY)
    add_template(catalog, gated=False, module="leaky")
    one = host_settings(tmp_path, "host-1", catalog, shared_url, secret_key)
    with running_pool(OpsService(one, operator.db)):
        job = submit(operator, "infra", name="leaky")
        assert wait_state(operator, job, S.SUCCEEDED, S.FAILED) == S.SUCCEEDED
    text = log_text(operator, job)
    assert "conn=" in text and "***" in text
    assert PASSWORD not in text and "dbname=" not in text
    assert PASSWORD not in store_text(shared_url)


def test_the_connection_string_is_libpq_s_own_form() -> None:
    """Terraform's driver takes ``key=value`` pairs: a socket directory is the host, quotes
    and backslashes in a password are escaped, TLS options pass through, others do not."""
    socket = sa.make_url("postgresql+psycopg://ops@/store?host=/run/pg&port=5433")
    assert tfstate.conn_str(socket) == (
        "host='/run/pg' port='5433' dbname='store' user='ops' "
        "application_name='opsconsole-terraform'"
    )
    tcp = sa.make_url(
        "postgresql+psycopg://ops:it's\\x@db.example:6432/store"
        "?sslmode=verify-full&sslrootcert=/etc/ca.pem&target_session_attrs=read-write"
    )
    assert tfstate.conn_str(tcp) == (
        "host='db.example' port='6432' dbname='store' user='ops' password='it\\'s\\\\x' "
        "application_name='opsconsole-terraform' sslmode='verify-full' "
        "sslrootcert='/etc/ca.pem'"
    )


def test_only_a_postgresql_store_shares_the_state(tmp_path: Path, shared_url: str) -> None:
    sqlite = Database(f"sqlite:///{tmp_path / 'local.db'}")
    pg = Database(shared_url)
    try:
        assert not tfstate.shared(sqlite) and tfstate.shared(pg)
        assert tfstate.backend_env(pg)["PG_SCHEMA_NAME"] == tfstate.SCHEMA
    finally:
        sqlite.dispose()
        pg.dispose()
