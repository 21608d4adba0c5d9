"""Who may do what: roles, teams and the store owner's default, as pure rules and in the service."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest
from support import write_template

from opsconsole.config import load_settings
from opsconsole.core import access
from opsconsole.core.access import Policy, Role, parse_policy, refusal, role_of
from opsconsole.core.errors import Forbidden, InvalidParams
from opsconsole.core.identity import Identity, current, for_uid
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.store.db import Database

ALICE = Identity(uid=5001, name="alice", groups=frozenset({"alice", "ops", "web"}))
BOB = Identity(uid=5002, name="bob", groups=frozenset({"bob", "ops"}))
CAROL = Identity(uid=5003, name="carol", groups=frozenset({"carol", "ops-leads"}))
ROOT_GROUP = grp.getgrgid(0).gr_name
ROOT_USER = pwd.getpwuid(0).pw_name


def policy(**kw: object) -> Policy:
    """A policy built as the parser would, without needing these accounts on the host."""
    m = access.Member
    roles = (
        (Role.OPERATOR, (m("group", "ops"),)),
        (Role.APPROVER, (m("user", "carol"),)),
        (Role.ADMIN, (m("user", "root"),)),
    )
    teams = (access.Team("web", (m("group", "web"),), 2),)
    return Policy(**{"roles": roles, "teams": teams, **kw})  # type: ignore[arg-type]


# -- the rules --------------------------------------------------------------------------------


def test_roles_are_ordered_and_the_highest_held_counts() -> None:
    p = policy()
    assert role_of(ALICE, p, store_owner=None) is Role.OPERATOR
    assert role_of(CAROL, p, store_owner=None) is Role.APPROVER
    assert role_of(Identity(7, "eve", frozenset()), p, store_owner=None) is None
    assert Role.VIEWER < Role.OPERATOR < Role.APPROVER < Role.ADMIN


def test_default_deny_for_an_account_no_role_lists() -> None:
    eve = Identity(7, "eve", frozenset({"eve"}))
    why = refusal(eve, "cancel", None, policy(), store_owner=0)
    assert why == "eve may not cancel jobs: needs the operator role"


def test_without_a_roles_table_only_the_store_owner_is_admin() -> None:
    bare = Policy()
    assert refusal(ALICE, "reset-key", None, bare, store_owner=ALICE.uid) is None
    why = refusal(BOB, "cancel", None, bare, store_owner=ALICE.uid)
    assert why is not None and why.startswith("bob may not cancel jobs: opsconsole.toml has no")


def test_root_has_no_role_it_is_not_given() -> None:
    root = Identity(0, "root", frozenset({"root"}))
    only_ops = Policy(roles=((Role.OPERATOR, (access.Member("group", "ops"),)),))
    assert refusal(root, "submit", None, only_ops, store_owner=0) == (
        "root may not submit jobs: needs the operator role"
    )


def test_each_verb_needs_its_role() -> None:
    p = policy()
    for verb in ("submit", "cancel", "retry", "priority", "after"):
        assert refusal(BOB, verb, None, p, store_owner=0) is None, verb
    assert refusal(BOB, "approve", None, p, store_owner=0) == (
        "bob may not approve jobs: needs the approver role (bob has the operator role)"
    )
    assert refusal(CAROL, "approve", None, p, store_owner=0) is None
    assert refusal(CAROL, "resize", None, p, store_owner=0) == (
        "carol may not resize workers: needs the admin role (carol has the approver role)"
    )


def test_a_templates_team_scopes_submit_cancel_and_retry() -> None:
    p = policy()
    for verb in ("submit", "cancel", "retry"):
        assert refusal(ALICE, verb, "web", p, store_owner=0) is None
    assert refusal(BOB, "cancel", "web", p, store_owner=0) == (
        "bob may not cancel jobs of team web: needs the operator role in team web "
        "(bob is not a member)"
    )
    viewer_in_web = Identity(9, "dan", frozenset({"web"}))
    assert refusal(viewer_in_web, "retry", "web", p, store_owner=0) == (
        "dan may not retry jobs of team web: needs the operator role in team web"
    )
    root = Identity(0, "root", frozenset({"root"}))
    assert refusal(root, "cancel", "web", p, store_owner=0) is None  # admins may


def test_a_team_the_config_does_not_define_is_a_config_error() -> None:
    with pytest.raises(InvalidParams, match=r"team 'db' is not defined .*\[teams\.db\]"):
        refusal(ALICE, "submit", "db", policy(), store_owner=0)


def test_require_raises_forbidden_with_the_reason() -> None:
    with pytest.raises(Forbidden, match=r"^bob may not reset the store's secret key: needs"):
        access.require(BOB, "reset-key", None, policy=policy(), store_owner=0)


# -- identity ----------------------------------------------------------------------------------


def test_identity_is_the_process_account_not_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER", "mallory")
    monkeypatch.setenv("LOGNAME", "mallory")
    me = current()
    assert me.uid == os.getuid()
    assert me.name == pwd.getpwuid(os.getuid()).pw_name
    assert grp.getgrgid(pwd.getpwuid(os.getuid()).pw_gid).gr_name in me.groups


def test_an_unknown_uid_is_named_by_number() -> None:
    unknown = next(u for u in range(60000, 65000) if not _uid_exists(u))
    assert for_uid(unknown) == Identity(unknown, f"uid:{unknown}", frozenset())


def _uid_exists(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


# -- parsing the config --------------------------------------------------------------------------


def test_parse_roles_and_teams() -> None:
    p = parse_policy(
        {"operator": [f"group:{ROOT_GROUP}"], "admin": [f"user:{ROOT_USER}"]},
        {"web": {"members": [f"user:{ROOT_USER}"], "max_concurrent": 3}},
        origin="x.toml",
    )
    assert p.roles is not None and dict(p.roles)[Role.ADMIN][0].name == ROOT_USER
    team = p.team("web")
    assert team is not None and team.max_concurrent == 3


@pytest.mark.parametrize(
    ("roles", "teams", "message"),
    [
        ({"superuser": ["user:root"]}, None, "x.toml: [roles] unknown role 'superuser'"),
        ({"admin": ["root"]}, None, "x.toml: [roles] admin: member 'root' must be 'user:NAME'"),
        ({"admin": ["host:root"]}, None, "member 'host:root' must be 'user:NAME' or 'group:NAME'"),
        ({"admin": "user:root"}, None, "x.toml: [roles] admin must be a list"),
        ({"operator": ["group:no-such-group-x"]}, None, "no group 'no-such-group-x' on this host"),
        ({"operator": ["user:no-such-user-x"]}, None, "no user 'no-such-user-x' on this host"),
        (None, {"web": {"members": ["group:no-such-group-x"]}}, "[teams.web] members: no group"),
        (None, {"web": {"members": []}, "max_concurrent": 0}, "[teams.max_concurrent] must be"),
        (None, {"web": {"members": [], "max_concurrent": 0}}, "max_concurrent must be an integer"),
        (None, {"web": {"members": [], "cap": 1}}, "[teams.web]: unknown key 'cap'"),
        (None, {"web": {}}, "[teams.web]: missing 'members'"),
        (None, {"Web Team": {"members": []}}, "a team name is lowercase letters"),
    ],
)
def test_bad_roles_and_teams_are_one_line_each(roles: object, teams: object, message: str) -> None:
    with pytest.raises(InvalidParams) as err:
        parse_policy(roles, teams, origin="x.toml")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_settings_read_the_tables_from_opsconsole_toml(home: Path) -> None:
    (home / "opsconsole.toml").write_text(
        f'workers = 2\n[roles]\nadmin = ["user:{ROOT_USER}"]\n'
        f'[teams.web]\nmembers = ["group:{ROOT_GROUP}"]\nmax_concurrent = 1\n'
    )
    (home / "opsconsole.toml").chmod(0o644)
    s = load_settings(home=home)
    assert s.workers == 2
    assert s.policy.roles is not None and s.policy.team("web") is not None
    assert s.policy.source_uid == os.getuid()


def test_a_roles_file_others_may_write_is_refused(home: Path) -> None:
    (home / "opsconsole.toml").write_text(f'[roles]\nadmin = ["user:{ROOT_USER}"]\n')
    (home / "opsconsole.toml").chmod(0o664)
    with pytest.raises(InvalidParams, match=r"holds \[roles\] or \[teams\] but others may write"):
        load_settings(home=home)


def test_no_tables_means_no_roles_table(home: Path) -> None:
    (home / "opsconsole.toml").write_text("workers = 2\n")
    assert load_settings(home=home).policy.roles is None


def test_a_template_team_must_be_a_name(catalog: Path) -> None:
    from opsconsole.core.catalog import template_from_dict

    base = {"name": "t", "runner": "shell", "command": ["true"]}
    assert template_from_dict({**base, "team": "web"}).team == "web"
    assert template_from_dict(base).team is None
    with pytest.raises(InvalidParams, match=r"^team must be a team name"):
        template_from_dict({**base, "team": ["web"]})


# -- in the service: refused, audited, exit 4 -------------------------------------------------


@pytest.fixture
def strict(settings, catalog: Path, home: Path):
    """A service whose config makes this process a viewer only (no operator role)."""
    write_template(catalog, "echo", "runner: shell\ncommand: [echo, hi]\n")
    write_template(catalog, "webdeploy", "runner: shell\ncommand: [echo, hi]\nteam: web\n")
    me = current()

    def open_with(roles: str, teams: str = "") -> OpsService:
        (home / "opsconsole.toml").write_text(f"[roles]\n{roles}\n{teams}")
        (home / "opsconsole.toml").chmod(0o644)
        s = load_settings(home=home, catalog=catalog, db=settings.db)
        return OpsService(s, Database(s.db))

    services: list[OpsService] = []

    def make(roles: str, teams: str = "") -> OpsService:
        services.append(open_with(roles, teams))
        return services[-1]

    yield me, make
    for svc in services:
        svc.db.dispose()


def test_a_refused_cancel_is_forbidden_and_recorded_on_the_job(strict) -> None:
    me, make = strict
    admin = make(f'admin = ["user:{me.name}"]')
    job = admin.submit(SubmitRequest(template="echo"))
    viewer = make(f'viewer = ["user:{me.name}"]')
    with pytest.raises(Forbidden) as err:
        viewer.cancel(job.id)
    assert str(err.value) == (
        f"{me.name} may not cancel jobs: needs the operator role ({me.name} has the viewer role)"
    )
    view = viewer.get(job.id, with_events=True)
    assert view.state.value == "queued"  # nothing changed
    last = view.events[-1]
    assert (last.kind, last.actor, last.message) == ("refused", me.name, str(err.value))


@pytest.mark.parametrize(
    ("verb", "act"),
    [
        ("retry", lambda s, j: s.retry(j)),
        ("priority", lambda s, j: s.set_priority(j, "high")),
        ("after", lambda s, j: s.add_dependencies(j, [j])),
    ],
)
def test_every_job_verb_is_checked(strict, verb, act) -> None:
    me, make = strict
    job = make(f'admin = ["user:{me.name}"]').submit(SubmitRequest(template="echo"))
    viewer = make(f'viewer = ["user:{me.name}"]')
    with pytest.raises(Forbidden, match="needs the operator role"):
        act(viewer, job.id)
    refused = [e for e in viewer.get(job.id, with_events=True).events if e.kind == "refused"]
    assert len(refused) == 1


def test_submit_reset_key_and_resize_are_checked(strict) -> None:
    me, make = strict
    operator = make(f'operator = ["user:{me.name}"]')
    with pytest.raises(Forbidden, match="may not reset the store's secret key: needs the admin"):
        operator.reset_key()
    with pytest.raises(Forbidden, match="may not resize workers: needs the admin role"):
        operator.resize_worker("w1", 2)
    viewer = make(f'viewer = ["user:{me.name}"]')
    with pytest.raises(Forbidden, match="may not submit jobs: needs the operator role"):
        viewer.submit(SubmitRequest(template="echo"))
    assert viewer.counts()["queued"] == 0


def test_a_team_template_needs_membership(strict) -> None:
    me, make = strict
    outsider = make(
        f'operator = ["user:{me.name}"]', f'[teams.web]\nmembers = ["user:{ROOT_USER}"]\n'
    )
    if me.name != ROOT_USER:
        pytest.skip("needs the test to run as root")
    member = outsider.submit(SubmitRequest(template="webdeploy"))
    assert member.template == "webdeploy"
    undefined = make(f'operator = ["user:{me.name}"]')
    with pytest.raises(InvalidParams, match=r"team 'web' is not defined"):
        undefined.submit(SubmitRequest(template="webdeploy"))
    nobody = make(f'operator = ["user:{me.name}"]', '[teams.web]\nmembers = ["group:nogroup"]\n')
    with pytest.raises(Forbidden, match="may not cancel jobs of team web: needs the operator"):
        nobody.cancel(member.id)


def test_roles_from_a_file_the_store_owner_does_not_own_are_refused(
    strict, home: Path, db_path: Path
) -> None:
    """Someone's own opsconsole.toml (in their cwd, say) must not grant them admin."""
    me, make = strict
    if me.uid != 0:
        pytest.skip("chown needs root")
    svc = make(f'admin = ["user:{me.name}"]')
    alice, bob = [p for p in pwd.getpwall() if p.pw_uid not in (0, me.uid)][:2]
    os.chown(db_path, alice.pw_uid, -1)  # the store is alice's
    os.chown(home / "opsconsole.toml", bob.pw_uid, -1)  # the roles are bob's
    svc.db.dispose()
    svc = OpsService(
        load_settings(home=home, catalog=svc.settings.catalog, db=svc.settings.db),
        Database(svc.settings.db),
    )
    try:
        with pytest.raises(Forbidden, match="roles and teams are not trusted: the file belongs"):
            svc.submit(SubmitRequest(template="echo"))
        os.chown(home / "opsconsole.toml", alice.pw_uid, -1)  # the store owner's file is trusted
        trusted = OpsService(
            load_settings(home=home, catalog=svc.settings.catalog, db=svc.settings.db), svc.db
        )
        assert trusted.submit(SubmitRequest(template="echo")).state.value == "queued"
    finally:
        svc.db.dispose()


def test_a_refused_action_is_in_the_audit_trail(strict) -> None:
    from opsconsole.core.audit import AuditRequest

    me, make = strict
    admin = make(f'admin = ["user:{me.name}"]')
    job = admin.submit(SubmitRequest(template="echo"))
    viewer = make(f'viewer = ["user:{me.name}"]')
    with pytest.raises(Forbidden):
        viewer.cancel(job.id)
    page = viewer.audit(AuditRequest(action="refused"))
    assert [(e.job_id, e.kind, e.actor) for e in page.events] == [(job.id, "refused", me.name)]


def test_a_refused_submit_is_audited_under_no_job(strict) -> None:
    """No job exists yet, so the refusal is an event of no job: it still has its actor."""
    from opsconsole.core.audit import AuditRequest

    me, make = strict
    viewer = make(f'viewer = ["user:{me.name}"]')
    with pytest.raises(Forbidden) as err:
        viewer.submit(SubmitRequest(template="echo"))
    events = viewer.audit(AuditRequest(action="refused")).events
    assert [(e.job_id, e.actor, e.message) for e in events] == [("", me.name, str(err.value))]
