"""Database roles (PostgreSQL): who connects as whom, and what opsconsole role each holds.

A mixin of ``OpsService`` for ``db roles`` / ``db grant`` / ``db revoke``. Granting is an
admin's verb here and, in the database, needs a role that may create roles: both must agree.
What a role may then do is held by migration 0007's rules, not by this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from opsconsole.core.host import ServiceHost
from opsconsole.core.store import roles as role_store


@dataclass(frozen=True)
class RoleGrant:
    """One login role and the opsconsole role it holds."""

    login: str
    role: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RolesView:
    """The store's connection (who the rules see) and every grant."""

    session: str
    trusted: bool
    """The connection is a worker, the tables' owner or a superuser: not bound by the rules
    for people (four-eyes, the gate)."""
    grants: tuple[RoleGrant, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "trusted": self.trusted,
            "grants": [g.to_dict() for g in self.grants],
        }


class RolesMixin(ServiceHost):
    def db_roles(self) -> RolesView:
        """Who this process is in the database, and who holds which opsconsole role."""
        self.authorize("read")
        me = role_store.session(self.db)
        grants = tuple(RoleGrant(g.login, g.role) for g in role_store.members(self.db))
        return RolesView(me.login, me.trusted, grants)

    def db_grant(self, login: str, role: str) -> RoleGrant:
        """Give the login role ``login`` (made when missing, no password) exactly ``role``."""
        self.authorize("roles")
        done = role_store.grant(self.db, login, role)
        return RoleGrant(done.login, done.role)

    def db_revoke(self, login: str) -> list[str]:
        """Take every opsconsole role from ``login``; the roles it held."""
        self.authorize("roles")
        return role_store.revoke(self.db, login)
