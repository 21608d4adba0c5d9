"""The database enforces the rules: real OS accounts with a psql prompt on a peer-authenticated
PostgreSQL cannot approve their own job, approve in someone else's name or skip an approval;
the same accounts through the installed CLI, and a worker's role, do their work as usual.

alice and bob are approvers, carol an operator; ``ocworker`` is the workers' role. Every
statement a person runs goes through ``runuser -u PERSON -- psql``: peer authentication
makes ``session_user`` their login, whatever they type.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from os_users import Accounts, Host, made_accounts, needs_other_users, shared_host
from pg_roles_support import OWNER, PERSON, WORKER, PeerCluster, start_peer_cluster
from support import wait_until

from opsconsole.cli.exit_codes import ExitCode
from opsconsole.config import load_settings
from opsconsole.core.errors import Forbidden, InvalidParams
from opsconsole.core.service import OpsService
from opsconsole.core.store import roles
from opsconsole.core.store.db import Database, jobs
from opsconsole.engine.pool import WorkerPool

TAG = f"ocr{os.getpid() % 100000}"
BIN = Path(sys.executable).parent / "opsconsole"
GATED = {"runner": "shell", "command": ["echo", "hi"], "approval": {"required": 1}}

pytestmark = needs_other_users


@pytest.fixture(scope="module")
def accounts() -> Iterator[Accounts]:
    with made_accounts(TAG) as acc:
        yield acc


@pytest.fixture(scope="module")
def cluster(accounts: Accounts) -> Iterator[PeerCluster]:
    yield from start_peer_cluster()


@pytest.fixture
def store(cluster: PeerCluster, accounts: Accounts) -> Iterator[str]:
    """A migrated database; alice and bob approvers, carol an operator; its name."""
    name = cluster.new_database()
    db = Database(cluster.url_as(name, "postgres"))
    try:
        db.ensure_schema()
        for login, role in (
            (accounts.alice, "approver"),
            (accounts.bob, "approver"),
            (accounts.carol, "operator"),
            (WORKER, "worker"),
            (PERSON, "approver"),
        ):
            roles.grant(db, login, role)
        yield name
    finally:
        db.dispose()


def _gated_job(
    cluster: PeerCluster,
    store: str,
    submitter: str,
    owner: str = "postgres",
    approval: dict[str, object] | None = None,
) -> str:
    """A gated job awaiting approval, submitted by ``submitter`` (written as the owner)."""
    now = datetime.now(UTC)
    job_id = uuid.uuid4().hex[:8]
    row = dict(
        id=job_id,
        template="deploy",
        state="awaiting_approval",
        spec={"name": "deploy", **GATED, **({"approval": approval} if approval else {})},
        submitted_by=submitter,
        run_at=now,
        created_at=now,
        updated_at=now,
    )
    db = Database(cluster.url_as(store, owner))
    try:
        with db.write() as conn:
            conn.execute(jobs.insert().values(**row))
    finally:
        db.dispose()
    return job_id


def _approval(job_id: str, actor: str, digest: str = "d1") -> str:
    return (
        "INSERT INTO approvals (job_id, round, actor, decision, comment, digest, at) "
        f"VALUES ('{job_id}', 0, '{actor}', 'approve', '', '{digest}', now())"
    )


def _refused(out: object, why: str) -> None:
    assert out.returncode != 0, (out.stdout, out.stderr)  # type: ignore[attr-defined]
    assert why in out.stderr, out.stderr  # type: ignore[attr-defined]


@pytest.mark.slow
def test_a_person_at_a_psql_prompt_cannot_approve_their_own_job_or_skip_the_approval(
    cluster: PeerCluster, store: str, accounts: Accounts
) -> None:
    alice, bob, carol = accounts.alice, accounts.bob, accounts.carol
    job = _gated_job(cluster, store, alice)
    state = f"SELECT state FROM jobs WHERE id = '{job}'"
    assert cluster.sql_as(alice, store, "SELECT session_user, opsconsole_trusted()").stdout == (
        f"{alice}|f\n"
    )

    # four eyes: her own approval, in her name or in bob's
    _refused(cluster.sql_as(alice, store, _approval(job, alice)), "may not approve it (four eyes)")
    _refused(cluster.sql_as(alice, store, _approval(job, bob)), f"in the name of {bob}")
    # skipping the gate: open it by hand, or with an approval in the same transaction
    opening = "UPDATE jobs SET state = 'queued', approved_digest = '{digest}' WHERE id = '{job}'"
    skip = opening.format(digest="d1", job=job)
    _refused(cluster.sql_as(alice, store, skip), "has not the approvals its gate needs")
    # ... or make the job someone else's, or its policy allow self-approval, first
    _refused(
        cluster.sql_as(
            alice, store, f"UPDATE jobs SET submitted_by = '{carol}' WHERE id = '{job}'"
        ),
        "never changes",
    )
    allow = (
        "UPDATE jobs SET spec = jsonb_set(spec::jsonb, '{approval,self_approval}', 'true')::json "
        f"WHERE id = '{job}'"
    )
    _refused(cluster.sql_as(alice, store, allow), "changes only by a worker")
    # ... or submit a copy of it already queued
    copy = (
        f"CREATE TEMP TABLE c AS SELECT * FROM jobs WHERE id = '{job}'; "
        "UPDATE c SET id = 'copy1', state = 'queued'; INSERT INTO jobs SELECT * FROM c"
    )
    _refused(cluster.sql_as(alice, store, copy), "it is submitted awaiting approval")
    # a person's verbs move jobs; claiming, finishing or writing history is the workers'
    _refused(
        cluster.sql_as(alice, store, f"UPDATE jobs SET state = 'rejected' WHERE id = '{job}'"),
        "rejected only with a decision that says so",
    )
    finished = (
        f"CREATE TEMP TABLE f AS SELECT * FROM jobs WHERE id = '{job}'; "
        f"UPDATE f SET id = 'done1', state = 'succeeded', submitted_by = '{alice}'; "
        "INSERT INTO jobs SELECT * FROM f"
    )
    _refused(cluster.sql_as(alice, store, finished), "not succeeded")
    # the audit trail: her events are hers; a break-glass review is another person's to ack
    forged = (
        "INSERT INTO job_events (job_id, ts, kind, actor, message) "
        f"VALUES ('{job}', now(), 'approved', '{bob}', 'approved by {bob}')"
    )
    _refused(cluster.sql_as(alice, store, forged), f"event in the name of {bob}")
    review = (
        f"INSERT INTO reviews (job_id, broken_by, reason, created_at) "
        f"VALUES ('{job}', '{alice}', 'down', now()) RETURNING id"
    )
    opened = cluster.sql_as(alice, store, review)
    assert opened.returncode == 0, opened.stderr
    ack = "UPDATE reviews SET acked_by = '{who}', acked_at = now() WHERE id = {id}"
    rid = opened.stdout.split()[0]
    _refused(cluster.sql_as(alice, store, ack.format(who=alice, id=rid)), "(four eyes)")
    _refused(cluster.sql_as(alice, store, ack.format(who=bob, id=rid)), f"in the name of {bob}")
    _refused(cluster.sql_as(carol, store, ack.format(who=carol, id=rid)), "needs the opsconsole_a")
    acked = cluster.sql_as(bob, store, ack.format(who=bob, id=rid))
    assert acked.returncode == 0, acked.stderr
    _refused(cluster.sql_as(bob, store, ack.format(who=bob, id=rid)), "acknowledgement is written")
    # decisions are history: nobody but the workers changes or removes one
    _refused(cluster.sql_as(alice, store, "DELETE FROM approvals"), "permission denied")
    _refused(cluster.sql_as(alice, store, "UPDATE approvals SET actor = 'x'"), "permission denied")
    # an operator is no approver
    _refused(cluster.sql_as(carol, store, _approval(job, carol)), "needs the opsconsole_approver")
    assert cluster.scalar(store, state) == "awaiting_approval"
    assert cluster.scalar(store, f"SELECT count(*) FROM approvals WHERE job_id = '{job}'") == 0

    # another person's approval opens the gate, for the digest approved and no other
    wrong = f"{_approval(job, bob, 'd1')}; {opening.format(digest='d2', job=job)}"
    _refused(cluster.sql_as(bob, store, wrong), "has not the approvals its gate needs")
    opened = cluster.sql_as(bob, store, f"{_approval(job, bob, 'd1')}; {skip}")
    assert opened.returncode == 0, opened.stderr
    assert cluster.scalar(store, state) == "queued"
    # once approved, the decision stays as given
    _refused(cluster.sql_as(bob, store, "UPDATE approvals SET digest = 'd2'"), "permission denied")
    # and only a worker claims the job, or says how it ended
    claim = f"UPDATE jobs SET state = 'running', attempts = 1 WHERE id = '{job}'"
    _refused(cluster.sql_as(bob, store, claim), "only a worker moves a job from queued to running")
    worker = Database(cluster.url_as(store, WORKER))
    try:
        with worker.write() as conn:
            conn.execute(sa.text(claim))
    finally:
        worker.dispose()
    ended = f"UPDATE jobs SET state = 'succeeded', result = '\"ok\"' WHERE id = '{job}'"
    _refused(cluster.sql_as(bob, store, ended), "from running to succeeded")
    forged = f"UPDATE jobs SET result = '\"forged\"' WHERE id = '{job}'"
    with_worker = Database(cluster.url_as(store, WORKER))
    try:
        with with_worker.write() as conn:
            conn.execute(sa.text(ended))
    finally:
        with_worker.dispose()
    _refused(cluster.sql_as(bob, store, forged), "its record is history")
    assert cluster.scalar(store, f"SELECT result::text FROM jobs WHERE id = '{job}'") == '"ok"'


def test_the_workers_role_is_trusted_and_a_person_is_not(
    cluster: PeerCluster, store: str, accounts: Accounts
) -> None:
    worker = Database(cluster.url_as(store, WORKER))
    try:
        assert roles.session(worker) == roles.Session(WORKER, trusted=True)
        listed = roles.members(worker)
        assert roles.Grant(accounts.alice, "approver") in listed
        assert roles.Grant(accounts.carol, "operator") in listed
        # the worker's pass at an expired request: recorded in the system's name
        job = _gated_job(cluster, store, accounts.alice)
        with worker.write() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO approvals (job_id, round, actor, decision, comment, at) "
                    f"VALUES ('{job}', 0, 'opsconsole', 'expire', 'expired', now())"
                )
            )
    finally:
        worker.dispose()
    out = cluster.sql_as(
        accounts.alice,
        store,
        "INSERT INTO approvals (job_id, round, actor, decision, comment, at) "
        f"VALUES ('{job}', 0, '{accounts.alice}', 'expire', 'x', now())",
    )
    _refused(out, "only a worker records the decision 'expire'")


def test_a_refusal_reaches_the_caller_as_forbidden_and_grant_checks_its_input(
    cluster: PeerCluster, store: str, accounts: Accounts
) -> None:
    owner = Database(cluster.url_as(store, "postgres"))
    try:
        with pytest.raises(InvalidParams, match="invalid login"):
            roles.grant(owner, "Robert'); DROP TABLE jobs;--", "viewer")
        with pytest.raises(InvalidParams, match="unknown role 'root'"):
            roles.grant(owner, accounts.carol, "root")
        # a new role replaces the old one: carol is a viewer now, then nothing
        roles.grant(owner, accounts.carol, "viewer")
        held = [g for g in roles.members(owner) if g.login == accounts.carol]
        assert held == [roles.Grant(accounts.carol, "viewer")]
        assert roles.revoke(owner, accounts.carol) == ["viewer"]
        assert all(g.login != accounts.carol for g in roles.members(owner))
    finally:
        owner.dispose()
    out = cluster.sql_as(accounts.carol, store, "SELECT count(*) FROM jobs")
    _refused(out, "permission denied for table jobs")
    # the store maps PostgreSQL's refusal to Forbidden (exit 4), not "store unavailable" (5)
    person = Database(cluster.url_as(store, PERSON))
    try:
        job = _gated_job(cluster, store, accounts.bob)
        refused = pytest.raises(Forbidden, match=r"the database refuses: .* has not the approvals")
        with refused, person.write() as conn:
            conn.execute(
                jobs.update().where(jobs.c.id == job).values(state="queued", approved_digest="d")
            )
        denied = pytest.raises(Forbidden, match=r"the database refuses: permission denied")
        with denied, person.write() as conn:
            conn.execute(sa.text("DELETE FROM approvals"))
    finally:
        person.dispose()


@pytest.fixture
def host(accounts: Accounts) -> Iterator[Host]:
    gate = 'runner: shell\ncommand: [echo, "deployed"]\napproval: {required: 1}\n'
    hello = 'runner: shell\ncommand: [echo, "hello"]\n'
    fix = 'runner: shell\ncommand: [echo, "fixed"]\napproval: {required: 1, break_glass: true}\n'
    with shared_host(accounts, {"deploy": gate, "hello": hello, "fix": fix}) as shared:
        yield shared


@pytest.mark.slow
def test_the_cli_as_each_person_and_a_worker_role_run_a_gated_job(
    cluster: PeerCluster, store: str, accounts: Accounts, host: Host
) -> None:
    a = accounts
    # no user in the URL: libpq takes the OS login, and peer authentication checks it
    url = f"postgresql+psycopg:///{store}?host={cluster.socketdir}&port={cluster.port}"
    host.write_config(
        f'db = "{url}"\n[roles]\noperator = ["user:{a.carol}"]\n'
        f'approver = ["user:{a.alice}", "user:{a.bob}"]\n'
    )
    job = host.ok(a.alice, "submit", "deploy")["id"]
    assert cluster.scalar(store, f"SELECT submitted_by FROM jobs WHERE id = '{job}'") == a.alice
    own = host.cli(a.alice, "approve", job)
    assert own.returncode == ExitCode.FORBIDDEN, (own.stdout, own.stderr)
    assert host.ok(a.bob, "approve", job)["state"] == "queued"
    # a refusal and a withdrawal go through the rules too
    refused = host.ok(a.alice, "submit", "deploy")["id"]
    assert host.ok(a.bob, "reject", refused, "--reason", "not today")["state"] == "rejected"
    withdrawn = host.ok(a.alice, "submit", "deploy")["id"]
    assert host.ok(a.alice, "jobs", "cancel", withdrawn)["state"] == "rejected"
    # break-glass: an operator opens the gate with a reason; another person acknowledges
    broken = host.ok(a.carol, "submit", "fix")["id"]
    out = host.ok(a.carol, "approve", broken, "--break-glass", "--reason", "site down")
    assert out["state"] == "queued"
    review = str(out["review"])
    mine = host.cli(a.carol, "reviews", "ack", review, "--comment", "ok")
    assert mine.returncode == ExitCode.FORBIDDEN, (mine.stdout, mine.stderr)
    acked = host.ok(a.alice, "reviews", "ack", review, "--comment", "checked")
    assert acked["acked_by"] == a.alice
    # an operator's own verbs under the rules: submit, cancel, retry
    plain = host.ok(a.carol, "submit", "hello")["id"]
    assert host.ok(a.carol, "jobs", "cancel", plain)["state"] == "cancelled"
    assert host.ok(a.carol, "jobs", "retry", plain)["state"] == "queued"

    # the database cannot know the catalog: a copy without its gate goes in at a psql
    # prompt, and the worker's gate hands it back to awaiting approval with the real one
    stripped = (
        f"CREATE TEMP TABLE c AS SELECT * FROM jobs WHERE id = '{job}'; "
        f"UPDATE c SET id = 'strip1', submitted_by = '{a.carol}', approved_digest = NULL, "
        "spec = (spec::jsonb - 'approval')::json; INSERT INTO jobs SELECT * FROM c"
    )
    done = cluster.sql_as(a.carol, store, stripped)
    assert done.returncode == 0, done.stderr
    settings = load_settings(
        home=host.home,
        catalog=host.catalog,
        db=url.replace("///", f"//{WORKER}@/"),
        poll_interval=0.05,
        heartbeat_interval=0.2,
        lease=3.0,
    )
    service = OpsService(settings, Database(settings.db))
    pool = WorkerPool(service, slots=1).start()
    try:
        wait_until(
            lambda: {service.get(j).state for j in (job, plain, broken)} == {"succeeded"},
            timeout=30,
        )
        wait_until(lambda: service.get("strip1").state == "awaiting_approval", timeout=30)
    finally:
        pool.stop(grace=0.5)
        service.db.dispose()
    # carol, an operator, reads what the worker wrote through the rules
    assert host.ok(a.carol, "jobs", "show", job)["state"] == "succeeded"
    assert cluster.scalar(store, "SELECT spec::jsonb -> 'approval' FROM jobs WHERE id = 'strip1'")


def _installed(home: Path, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN), "--home", str(home), "--db", db, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_db_grant_roles_and_revoke_from_the_cli(
    cluster: PeerCluster, store: str, accounts: Accounts, tmp_path: Path, host: Host
) -> None:
    db = cluster.url_as(store, "postgres")
    home = tmp_path / "home"
    home.mkdir()
    granted = _installed(home, db, "db", "grant", accounts.carol, "--role", "approver", "--json")
    assert granted.returncode == 0, granted.stderr
    assert json.loads(granted.stdout) == {"login": accounts.carol, "role": "approver"}
    listed = json.loads(_installed(home, db, "db", "roles", "--json").stdout)
    assert (listed["session"], listed["trusted"]) == ("postgres", True)
    assert {"login": accounts.carol, "role": "approver"} in listed["grants"]
    # the person's own view: who the rules see, and that they bind her
    url = f"postgresql+psycopg:///{store}?host={cluster.socketdir}&port={cluster.port}"
    host.write_config(f'db = "{url}"\n[roles]\napprover = ["user:{accounts.carol}"]\n')
    mine = host.ok(accounts.carol, "db", "roles")
    assert (mine["session"], mine["trusted"]) == (accounts.carol, False)
    # an approver is no admin: she may not grant herself more (the app says so, and the
    # database would refuse a role that may not create roles anyway)
    more = host.cli(accounts.carol, "db", "grant", accounts.carol, "--role", "admin")
    assert more.returncode == ExitCode.FORBIDDEN, (more.stdout, more.stderr)
    assert more.stderr.count("\n") == 1 and "Traceback" not in more.stderr

    bad = _installed(home, db, "db", "grant", "Bad Name", "--role", "viewer")
    assert bad.returncode == ExitCode.USAGE, bad.stderr
    assert bad.stderr.count("\n") == 1 and "invalid login 'Bad Name'" in bad.stderr
    revoked = _installed(home, db, "db", "revoke", accounts.carol, "--json")
    assert json.loads(revoked.stdout) == {"login": accounts.carol, "revoked": ["approver"]}
    # SQLite has no database roles: one line, usage error
    lite = _installed(home, str(tmp_path / "ops.db"), "db", "roles")
    assert lite.returncode == ExitCode.USAGE, lite.stderr
    [said] = [line for line in lite.stderr.splitlines() if "error:" in line]
    assert "database roles exist on PostgreSQL only" in said and "Traceback" not in lite.stderr


def _alembic(db: Database, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    import opsconsole

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(opsconsole.__file__).parent / "migrations"))
    with db.write() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_a_plain_owner_migrates_grants_on_its_tables_and_the_rules_come_and_go_with_0007(
    cluster: PeerCluster, store: str, accounts: Accounts
) -> None:
    """The owner may not create roles; the group roles exist (the cluster's): its grants and
    the rules hold all the same. A downgrade takes them away, an upgrade brings them back."""
    name = cluster.new_database(owner=OWNER)
    db = Database(cluster.url_as(name, OWNER))
    rules = "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'opsconsole_%'"
    try:
        db.ensure_schema()
        assert roles.session(db) == roles.Session(OWNER, trusted=True)
        job = _gated_job(cluster, name, accounts.alice, owner=OWNER)
        seen = cluster.sql_as(accounts.alice, name, "SELECT count(*) FROM jobs")
        assert seen.stdout == "1\n", seen.stderr
        out = cluster.sql_as(accounts.alice, name, _approval(job, accounts.alice))
        _refused(out, "may not approve it (four eyes)")
        assert cluster.scalar(name, rules) == 6
        _alembic(db, "0006")
        assert cluster.scalar(name, rules) == 0
        _refused(
            cluster.sql_as(accounts.alice, name, "SELECT count(*) FROM jobs"), "permission denied"
        )
        db.ensure_schema()
        assert cluster.scalar(name, rules) == 6
        _refused(cluster.sql_as(accounts.alice, name, _approval(job, accounts.alice)), "four eyes")
    finally:
        db.dispose()


def test_a_templates_approvers_and_group_approvers_are_held_too(
    cluster: PeerCluster, store: str, accounts: Accounts
) -> None:
    """``group:NAME`` is the PostgreSQL role NAME; ``user:NAME`` the login itself."""
    team = f"{TAG}team"
    cluster.admin(f"DROP ROLE IF EXISTS {team}")
    cluster.admin(f"CREATE ROLE {team} NOLOGIN")
    cluster.admin(f"GRANT {team} TO {accounts.bob}")
    try:
        # a group no role stands for approves nobody (and is no error)
        listed = [f"group:{TAG}nosuch", f"group:{team}", f"user:{PERSON}"]
        policy = {"required": 1, "approvers": listed}
        job = _gated_job(cluster, store, accounts.carol, approval=policy)
        out = cluster.sql_as(accounts.alice, store, _approval(job, accounts.alice))
        _refused(out, f"{accounts.alice} is not an approver of job {job}")
        done = cluster.sql_as(accounts.bob, store, _approval(job, accounts.bob))
        assert done.returncode == 0, done.stderr
        other = _gated_job(cluster, store, accounts.carol, approval=policy)
        person = Database(cluster.url_as(store, PERSON))
        try:
            with person.write() as conn:
                conn.execute(sa.text(_approval(other, PERSON)))
        finally:
            person.dispose()
    finally:
        cluster.admin(f"DROP OWNED BY {team}")
        cluster.admin(f"DROP ROLE {team}")


def test_a_policy_changes_only_to_a_stricter_one_in_a_new_round(
    cluster: PeerCluster, store: str, accounts: Accounts
) -> None:
    """The catalog's template changed while the job awaited approval: an approver's console
    carries the new policy into a new round, if it asks no less than the old one."""
    job = _gated_job(cluster, store, accounts.alice, approval={"required": 2})

    def change(key: str, value: str, bump: int = 1) -> str:
        return (
            f"UPDATE jobs SET gate_round = gate_round + {bump}, "
            f"spec = jsonb_set(spec::jsonb, '{{approval,{key}}}', '{value}')::json "
            f"WHERE id = '{job}'"
        )

    weaker = "or to a stricter one in a new round"
    _refused(cluster.sql_as(accounts.bob, store, change("required", "1")), weaker)
    _refused(cluster.sql_as(accounts.bob, store, change("self_approval", "true")), weaker)
    _refused(cluster.sql_as(accounts.bob, store, change("required", "3", bump=0)), weaker)
    stricter = cluster.sql_as(accounts.bob, store, change("required", "3"))
    assert stricter.returncode == 0, stricter.stderr
    listed = cluster.sql_as(accounts.bob, store, change("approvers", f'["user:{accounts.bob}"]'))
    assert listed.returncode == 0, listed.stderr
    wider = f'["user:{accounts.bob}", "user:{accounts.alice}"]'
    _refused(cluster.sql_as(accounts.bob, store, change("approvers", wider)), weaker)
    policy = f"SELECT spec::jsonb -> 'approval' ->> 'required' FROM jobs WHERE id = '{job}'"
    assert cluster.scalar(store, policy) == "3"
