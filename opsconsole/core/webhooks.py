"""Webhooks: events delivered to HTTP endpoints, signed, retried, self-disabling.
OpsService's mixin.

(Foundation stub: the webhooks helper fills this in.)
"""

from __future__ import annotations

from opsconsole.core.host import ServiceHost


class WebhooksMixin(ServiceHost):
    """list / test / enable, and what the dispatcher asks of the store."""
