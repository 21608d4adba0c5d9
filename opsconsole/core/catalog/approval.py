"""A template's approval policy: the only place ``approval:`` is parsed and checked.

Who may release a gated job is written next to what the job does, so a reviewer of the
template sees both. Every mistake is one line naming the key, like the rest of the schema.
"""

from __future__ import annotations

import grp
import pwd
import re
from dataclasses import dataclass
from typing import Any

from opsconsole.core.catalog.durations import parse_duration
from opsconsole.core.catalog.messages import described, printable
from opsconsole.core.errors import InvalidParams

APPROVAL_KEYS = ("required", "approvers", "expires", "self_approval", "break_glass")
DEFAULT_EXPIRY_S = 86400.0
"""An approval request nobody answers is rejected (expired) after a day, unless it says."""
_APPROVER_RE = re.compile(r"(user|group):([A-Za-z0-9_][A-Za-z0-9_.-]*\$?)")


class PolicyError(InvalidParams):
    """A mistake in ``approval:``; ``key`` is the sub-key it is about (for the line number)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class ApprovalPolicy:
    required: int
    approvers: tuple[str, ...]
    """``user:NAME`` and ``group:NAME`` entries; empty means anyone but the submitter."""
    expires_s: float
    self_approval: bool
    break_glass: bool

    @property
    def users(self) -> frozenset[str]:
        return frozenset(a[5:] for a in self.approvers if a.startswith("user:"))

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(a[6:] for a in self.approvers if a.startswith("group:"))

    def may_approve(self, user: str, groups: frozenset[str] | set[str]) -> bool:
        """Is ``user`` (member of ``groups``) one of the listed approvers? Anyone when none."""
        if not self.approvers:
            return True
        return user in self.users or bool(self.groups & set(groups))


def parse_approval(value: Any) -> ApprovalPolicy | None:
    """The policy of ``approval:`` (None when the key is absent); PolicyError on a mistake."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PolicyError(f"approval must be a mapping of keys, got {described(value)}")
    for key in value:
        if key not in APPROVAL_KEYS:
            shown = printable(key) if isinstance(key, str) else described(key)
            raise PolicyError(
                f"unknown key 'approval.{shown}' (known: {', '.join(APPROVAL_KEYS)})",
                key if isinstance(key, str) else None,
            )
    required = value.get("required", 1)
    if isinstance(required, bool) or not isinstance(required, int) or required < 1:
        raise PolicyError(
            f"approval.required must be an integer >= 1, got {described(required)}", "required"
        )
    approvers = value.get("approvers", [])
    if not isinstance(approvers, list):
        raise PolicyError(
            f'approval.approvers must be a list like ["group:ops", "user:alice"], '
            f"got {described(approvers)}",
            "approvers",
        )
    for item in approvers:
        if not isinstance(item, str) or not _APPROVER_RE.fullmatch(item):
            shown = printable(item) if isinstance(item, str) else described(item)
            raise PolicyError(
                f"approval.approvers: '{shown}' is not user:NAME or group:NAME", "approvers"
            )
    if len(set(approvers)) != len(approvers):
        raise PolicyError("approval.approvers lists an entry twice", "approvers")
    only_users = bool(approvers) and all(a.startswith("user:") for a in approvers)
    if only_users and required > len(approvers):
        raise PolicyError(
            f"approval.required is {required} but only {len(approvers)} user(s) may approve",
            "required",
        )
    expires = value.get("expires")
    expires_s = DEFAULT_EXPIRY_S
    if expires is not None:
        try:
            expires_s = parse_duration(expires)
        except InvalidParams as exc:
            raise PolicyError(f"approval.expires: {exc}", "expires") from None
        if expires_s <= 0:
            raise PolicyError("approval.expires must be greater than 0", "expires")
    flags = {}
    for key in ("self_approval", "break_glass"):
        flag = value.get(key, False)
        if not isinstance(flag, bool):
            raise PolicyError(f"approval.{key} must be true or false, got {described(flag)}", key)
        flags[key] = flag
    return ApprovalPolicy(
        required=required,
        approvers=tuple(approvers),
        expires_s=expires_s,
        self_approval=flags["self_approval"],
        break_glass=flags["break_glass"],
    )


def parse_confirm(value: Any) -> str | None:
    """``confirm:``: the text (placeholders allowed) an operator types to submit; None if absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"confirm must be a non-empty string, got {described(value)}")
    return value


def check_accounts(policy: ApprovalPolicy) -> str | None:
    """Why ``policy`` cannot be met on this host, or None: a listed user or group the system
    database does not know (a typo would leave a gate nobody can open), or ``required``
    above the number of accounts the list names (users, and the members of its groups).

    Checked when the catalog is loaded, not when a job's own copy of its template is read:
    a group removed later must not make a job already submitted unreadable.
    """
    possible: set[str] = set()
    for entry in policy.approvers:
        kind, name = entry.split(":", 1)
        try:
            if kind == "user":
                pwd.getpwnam(name)
                possible.add(name)
            else:
                group = grp.getgrnam(name)
                possible.update(group.gr_mem)
                possible.update(u.pw_name for u in pwd.getpwall() if u.pw_gid == group.gr_gid)
        except KeyError:
            return f"approval.approvers: no {kind} '{printable(name)}' on this host"
    if policy.approvers and policy.required > len(possible):
        return (
            f"approval.required is {policy.required} but the approvers name only "
            f"{len(possible)} account(s) on this host"
        )
    return None
