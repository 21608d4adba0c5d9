"""The key that seals a store's secrets: the store's record of it, this host's key checked
against that record, and recovering from a lost key.

Only the key's fingerprint is stored (in ``store_meta``), never the key: enough to refuse
a different key before it seals anything, or fails a job far from the cause. Never a new
key for a store that already records one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from opsconsole.core.errors import StoreUnavailable
from opsconsole.core.files import PRIVATE, Access
from opsconsole.core.secrets import (
    KEY_FINGERPRINT,
    RECOVER,
    SecretBox,
    create_key,
    fingerprint,
    key_origin,
    key_path,
    load_key,
    read_key,
)
from opsconsole.core.states import PENDING, JobState, Verb
from opsconsole.core.store import jobs as job_store
from opsconsole.core.store.db import Database, jobs, meta


@dataclass(frozen=True)
class KeySource:
    """Where this host's key comes from: the ``secret_key`` setting, else the key file."""

    home: Path
    configured: str = ""
    access: Access = PRIVATE


def store_key(db: Database, src: KeySource, *, create: bool) -> tuple[bytes | None, str | None]:
    """This host's key and the store's recorded fingerprint, once they are known to agree.

    With ``create``, a store without a key gets one (made if there is no key file) and
    records its fingerprint; without, nothing is made: (None, None) when there is no key.
    Raises StoreUnavailable, saying how to recover, for a missing or different key.
    """
    recorded = recorded_fingerprint(db)
    key = read_key(src.home, src.configured, access=src.access)
    if key is None:
        if recorded is not None:
            raise StoreUnavailable(
                f"store {db.describe()}: its secrets are sealed with key {recorded}, "
                f"but the key file {key_path(src.home)} is missing: {RECOVER}"
            )
        if not create:
            return None, None
        key = create_key(src.home, access=src.access)
    found = fingerprint(key)
    if recorded is None and create:
        recorded = record_fingerprint(db, found)
    if recorded is not None and found != recorded:
        raise StoreUnavailable(
            f"store {db.describe()}: its secrets are sealed with key {recorded}, "
            f"not with {key_origin(src.home, src.configured)} ({found}): {RECOVER}"
        )
    return key, recorded


def reset_key(
    db: Database, src: KeySource, *, actor: str, now: datetime
) -> tuple[SecretBox, str, list[str]]:
    """Make this host's key (a new one if there is no key file) the store's; cancel the
    pending jobs whose secrets it cannot open. Returns the box, its fingerprint, their ids."""
    key = load_key(src.home, src.configured, access=src.access)
    box = SecretBox(key)
    found = fingerprint(key)

    def why(job_id: str) -> str:
        return (
            f"its secrets were sealed with a lost key (reset to {found} by {actor}); "
            f"retry it with the secrets again: opsconsole jobs retry {job_id} -p NAME=..."
        )

    cancelled = adopt_key(db, found, box.can_open, actor=actor, now=now, message=why)
    return box, found, cancelled


def recorded_fingerprint(db: Database) -> str | None:
    with db.read() as conn:
        return conn.execute(
            sa.select(meta.c.value).where(meta.c.key == KEY_FINGERPRINT)
        ).scalar_one_or_none()


def record_fingerprint(db: Database, fingerprint: str) -> str:
    """Record ``fingerprint`` unless a store already has one; the one recorded either way.

    Two processes starting on a new store at once: the first one's key wins, and the other
    sees that its key is not the store's.
    """
    try:
        with db.write() as conn:
            conn.execute(meta.insert().values(key=KEY_FINGERPRINT, value=fingerprint))
    except sa.exc.IntegrityError:
        pass
    recorded = recorded_fingerprint(db)
    assert recorded is not None
    return recorded


def adopt_key(
    db: Database,
    fingerprint: str,
    can_open: Callable[[str], bool],
    *,
    actor: str,
    now: datetime,
    message: Callable[[str], str],
) -> list[str]:
    """Record ``fingerprint`` as the store's key and cancel the pending jobs whose sealed
    secrets ``can_open`` refuses, in one transaction; returns their ids.

    Running jobs are left alone: their worker opened the secrets already.
    """
    out: list[str] = []
    with db.write() as conn:
        conn.execute(meta.delete().where(meta.c.key == KEY_FINGERPRINT))
        conn.execute(meta.insert().values(key=KEY_FINGERPRINT, value=fingerprint))
        rows = conn.execute(
            sa.select(jobs.c.id, jobs.c.secret_blob)
            .where(jobs.c.state.in_([s.value for s in PENDING]))
            .where(jobs.c.secret_blob.is_not(None))
            .order_by(jobs.c.created_at, jobs.c.id)
        ).all()
        for job_id, blob in rows:
            if can_open(blob):
                continue
            row = job_store.transition(
                conn,
                job_id,
                JobState.CANCELLED,
                now,
                verb=Verb.CANCEL,
                kind="cancelled",
                actor=actor,
                message=message(job_id),
                only_from=PENDING,
                values={"cancel_reason": message(job_id)},
            )
            if row is not None:
                out.append(job_id)
    return out
