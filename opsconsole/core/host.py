"""What the service's parts count on from ``OpsService``: the one place it is declared.

The service API is split by concern into mixins (approvals, reviews, freezes, bulk actions,
audit, reports); each uses the store, the clock, the caller's identity and a few of the
service's own verbs. Declaring those here once keeps every mixin honest for a type checker
without each restating them. At run time they are ``OpsService``'s own.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsconsole.config import Settings
    from opsconsole.core.catalog import Catalog
    from opsconsole.core.clock import Clock
    from opsconsole.core.identity import Identity
    from opsconsole.core.secrets import SecretBox
    from opsconsole.core.store.db import Database
    from opsconsole.core.views import HealthCheck, JobView


class ServiceHost:
    """The attributes and verbs of ``OpsService`` that its mixins use."""

    db: Database
    settings: Settings
    identity: Identity
    clock: Clock

    if TYPE_CHECKING:

        @property
        def box(self) -> SecretBox: ...

        @property
        def catalog(self) -> Catalog: ...

        def now(self) -> datetime: ...
        def current_catalog(self) -> Catalog: ...
        def key_status(self) -> str: ...
        def get(self, ref: str, *, with_events: bool = False) -> JobView: ...
        def with_frozen(self, views: list[JobView]) -> list[JobView]: ...
        def cancel(self, ref: str, *, reason: str = "") -> JobView: ...
        def retry(self, ref: str) -> JobView: ...
        def authorize(
            self, verb: str, *, template: Any = None, job_id: str | None = None
        ) -> None: ...
        def audit_refusal(self, job_id: str, verb: str, reason: str) -> None: ...
        def wake_workers(self) -> None: ...
        def retention_check(self) -> HealthCheck: ...
        def webhook_health(self) -> list[HealthCheck]: ...
