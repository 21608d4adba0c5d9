"""Who may do what: roles and teams from ``opsconsole.toml`` applied to an identity.

The only place that decides whether an action is allowed. Pure functions over an
``Identity``, a ``Policy`` (the parsed ``[roles]`` and ``[teams.NAME]`` tables) and the
team of the template acted on; ``OpsService`` calls ``require`` before each verb, so the CLI
and the console enforce the same rules. Default deny: an account no role lists may do
nothing, except that with no ``[roles]`` table at all the store's owner is admin (a single
operator's first run just works). root has no role it is not given.
"""

from __future__ import annotations

import grp
import pwd
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from opsconsole.core.errors import Forbidden, InvalidParams
from opsconsole.core.identity import Identity

TEAM_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class Role(IntEnum):
    """Each role may do what the ones below it may."""

    VIEWER = 1
    OPERATOR = 2
    APPROVER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()


VERBS: dict[str, tuple[Role, str]] = {
    "read": (Role.VIEWER, "read jobs"),
    "submit": (Role.OPERATOR, "submit jobs"),
    "cancel": (Role.OPERATOR, "cancel jobs"),
    "retry": (Role.OPERATOR, "retry jobs"),
    "priority": (Role.OPERATOR, "change the priority of jobs"),
    "after": (Role.OPERATOR, "add dependencies to jobs"),
    "approve": (Role.APPROVER, "approve jobs"),
    "reject": (Role.APPROVER, "reject jobs"),
    "break-glass": (Role.OPERATOR, "break the glass on gated jobs"),
    "review": (Role.APPROVER, "acknowledge break-glass reviews"),
    "reset-key": (Role.ADMIN, "reset the store's secret key"),
    "resize": (Role.ADMIN, "resize workers"),
    "freeze": (Role.ADMIN, "set or lift freezes"),
    "prune": (Role.ADMIN, "prune the store"),
    "backup": (Role.ADMIN, "back up the store"),
    "vacuum": (Role.ADMIN, "vacuum the store"),
    "webhooks": (Role.ADMIN, "enable or test webhooks"),
    "roles": (Role.ADMIN, "grant or revoke database roles"),
}
"""Verb -> the least role it needs, and how the refusal names it."""

TEAM_VERBS = frozenset({"submit", "cancel", "retry", "break-glass"})
"""Verbs that a template's ``team`` scopes: its members with the operator role, and admins."""


@dataclass(frozen=True)
class Member:
    """One ``user:NAME`` or ``group:NAME`` entry of a role or a team."""

    kind: str
    name: str

    def matches(self, who: Identity) -> bool:
        return who.is_user(self.name) if self.kind == "user" else who.in_group(self.name)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class Team:
    name: str
    members: tuple[Member, ...]
    max_concurrent: int | None = None
    """Running jobs of the team's templates at most at once (None: no cap)."""

    def has(self, who: Identity) -> bool:
        return any(m.matches(who) for m in self.members)


@dataclass(frozen=True)
class Policy:
    """The parsed ``[roles]`` and ``[teams.NAME]`` tables (tuples: Settings is hashable)."""

    roles: tuple[tuple[Role, tuple[Member, ...]], ...] | None = None
    """None when the config has no ``[roles]`` table (then the store's owner is admin)."""
    teams: tuple[Team, ...] = ()
    source: str = ""
    """The config file the tables came from ('' when none)."""
    source_uid: int | None = None
    """Its owner: roles from a file the caller could write themselves would prove nothing."""

    def team(self, name: str) -> Team | None:
        return next((t for t in self.teams if t.name == name), None)

    def team_caps(self) -> dict[str, int]:
        """Team -> ``max_concurrent``, for the teams that have a cap (the claim enforces it)."""
        return {t.name: t.max_concurrent for t in self.teams if t.max_concurrent is not None}


def role_of(who: Identity, policy: Policy, *, store_owner: int | None) -> Role | None:
    """The highest role ``who`` holds, or None (``store_owner``: uid owning the store)."""
    if policy.roles is None:
        return Role.ADMIN if store_owner is None or who.uid == store_owner else None
    held = [role for role, members in policy.roles if any(m.matches(who) for m in members)]
    return max(held, default=None)


def refusal(
    who: Identity,
    verb: str,
    team: str | None,
    policy: Policy,
    *,
    store_owner: int | None,
) -> str | None:
    """Why ``who`` may not do ``verb`` (on a template of ``team``), or None when allowed.

    Raises InvalidParams when the template names a team the config does not define: that is
    a configuration mistake to fix, not a person to refuse.
    """
    need, what = VERBS[verb]
    role = role_of(who, policy, store_owner=store_owner)
    scoped = team is not None and verb in TEAM_VERBS
    entry = None
    if scoped:
        assert team is not None
        entry = policy.team(team)
        if entry is None:
            raise InvalidParams(
                f"the template's team '{team}' is not defined in opsconsole.toml "
                f"(add a [teams.{team}] table)"
            )
        what = f"{verb} jobs of team {team}"
    if role is Role.ADMIN:
        return None
    if policy.roles is None:
        owner = "unknown" if store_owner is None else _user(store_owner)
        return (
            f"{who.name} may not {what}: opsconsole.toml has no [roles] table, so only the "
            f"store's owner ({owner}) may act"
        )
    has = f" ({who.name} has the {role.label} role)" if role is not None else ""
    if role is None or role < need:
        where = f" in team {team}" if scoped else ""
        return f"{who.name} may not {what}: needs the {need.label} role{where}{has}"
    if entry is not None and not entry.has(who):
        return (
            f"{who.name} may not {what}: needs the {need.label} role in team {team} "
            f"({who.name} is not a member)"
        )
    return None


def require(
    who: Identity,
    verb: str,
    template: Any = None,
    *,
    policy: Policy,
    store_owner: int | None,
) -> None:
    """Raise Forbidden (one line naming the missing role or team) unless ``who`` may act.

    ``template`` is a Template (its ``team`` is used), a team name, or None.
    """
    team = template if isinstance(template, str) or template is None else template.team
    why = refusal(who, verb, team, policy, store_owner=store_owner)
    if why is not None:
        raise Forbidden(why)


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def check_team_name(name: str) -> None:
    """A filter's team name: InvalidParams unless it could name a team at all."""
    if not TEAM_NAME_RE.fullmatch(name):
        raise InvalidParams(
            f"invalid team '{name[:40]}': lowercase letters, digits, '.', '_' or '-'"
        )


# -- parsing the config tables -------------------------------------------------------------


def parse_member(entry: Any, where: str) -> Member:
    """``user:NAME`` or ``group:NAME`` naming an account or group this host knows."""
    if not isinstance(entry, str) or ":" not in entry:
        raise InvalidParams(f"{where}: member {entry!r} must be 'user:NAME' or 'group:NAME'")
    kind, name = entry.split(":", 1)
    if kind not in ("user", "group") or not name or name != name.strip():
        raise InvalidParams(f"{where}: member {entry!r} must be 'user:NAME' or 'group:NAME'")
    try:
        if kind == "user":
            pwd.getpwnam(name)
        else:
            grp.getgrnam(name)
    except KeyError:
        raise InvalidParams(f"{where}: no {kind} '{name[:40]}' on this host") from None
    return Member(kind, name)


def _members(value: Any, where: str) -> tuple[Member, ...]:
    if not isinstance(value, list):
        raise InvalidParams(f"{where} must be a list of 'user:NAME' or 'group:NAME'")
    return tuple(parse_member(item, where) for item in value)


def parse_policy(
    roles: Any, teams: Any, *, origin: str = "", source_uid: int | None = None
) -> Policy:
    """Validate the ``[roles]`` and ``[teams]`` tables; one line naming the first mistake."""
    parsed_roles: tuple[tuple[Role, tuple[Member, ...]], ...] | None = None
    if roles is not None:
        if not isinstance(roles, Mapping):
            raise InvalidParams(f"{origin}: [roles] must be a table")
        out = []
        for name, value in roles.items():
            try:
                role = Role[str(name).upper()]
            except KeyError:
                known = ", ".join(r.label for r in Role)
                raise InvalidParams(
                    f"{origin}: [roles] unknown role '{str(name)[:30]}' (known: {known})"
                ) from None
            if name != role.label:
                raise InvalidParams(f"{origin}: [roles] role names are lowercase: {role.label}")
            out.append((role, _members(value, f"{origin}: [roles] {role.label}")))
        parsed_roles = tuple(out)
    parsed_teams: list[Team] = []
    if teams is not None:
        if not isinstance(teams, Mapping):
            raise InvalidParams(f"{origin}: [teams] must hold [teams.NAME] tables")
        for name, body in teams.items():
            where = f"{origin}: [teams.{name}]"
            if not TEAM_NAME_RE.fullmatch(str(name)):
                raise InvalidParams(
                    f"{where}: a team name is lowercase letters, digits, '.', '_' or '-'"
                )
            if not isinstance(body, Mapping):
                raise InvalidParams(f"{where} must be a table")
            unknown = sorted(set(body) - {"members", "max_concurrent"})
            if unknown:
                raise InvalidParams(f"{where}: unknown key '{unknown[0]}'")
            if "members" not in body:
                raise InvalidParams(f"{where}: missing 'members'")
            cap = body.get("max_concurrent")
            if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
                raise InvalidParams(f"{where}: max_concurrent must be an integer >= 1")
            parsed_teams.append(Team(name, _members(body["members"], f"{where} members"), cap))
    return Policy(parsed_roles, tuple(parsed_teams), origin, source_uid)
