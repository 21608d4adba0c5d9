"""Webhook commands: ``webhooks list``, ``webhooks test NAME`` and ``webhooks enable NAME``.

Webhooks are declared in opsconsole.toml (``[[webhooks]]``); the store keeps their feed
cursor and failures. Exit codes: 0 done; 1 ``test``: the receiver did not answer 2xx;
2 bad input (a secret reference that does not resolve); 3 no such webhook; 4 not an admin.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from opsconsole.cli import complete, output
from opsconsole.cli.exit_codes import ExitCode
from opsconsole.cli.helptext import Command, JsonOpt
from opsconsole.cli.session import service

webhooks_app = typer.Typer(
    help="Signed event deliveries to HTTP endpoints.",
    no_args_is_help=True,
)


@complete.quiet
def webhook_names(ctx: typer.Context, incomplete: str) -> complete.Candidates:
    """The names declared in the config file, each with its URL (without credentials)."""
    return [
        (h.name, h.shown_url())
        for h in complete.settings_of(ctx).webhooks
        if h.name.startswith(incomplete)
    ]


NameArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="The webhook's name in opsconsole.toml.",
        autocompletion=webhook_names,
    ),
]


@webhooks_app.command("list", cls=Command)
def list_webhooks(as_json: JsonOpt = False) -> None:
    """List the declared webhooks: URL, events, state, failures and the last delivery.

    Examples:

    \b
      opsconsole webhooks list
      opsconsole webhooks list --json
    """
    views = service().webhooks()
    if as_json:
        output.emit_json([v.to_dict() for v in views])
        return
    if not views:
        output.line("no webhooks declared ([[webhooks]] in opsconsole.toml)")
        return
    output.table(
        None,
        ["NAME", "URL", "EVENTS", "STATE", "FAILURES", "PENDING", "LAST DELIVERY", "LAST STATUS"],
        [
            [
                v.name,
                v.url,
                ", ".join(v.events) + (f" ({', '.join(v.templates)})" if v.templates else ""),
                v.state,
                str(v.failures),
                str(v.pending),
                output.ago(v.last_delivery_at) if v.last_delivery_at else "never",
                v.last_status or "",
            ]
            for v in views
        ],
    )
    for v in views:
        if v.state == "disabled":
            output.warn(
                f"webhook {v.name} is disabled: {v.disabled_reason}; "
                f"opsconsole webhooks enable {v.name}"
            )


@webhooks_app.command("test", cls=Command)
def test(name: NameArg, as_json: JsonOpt = False) -> None:
    """Send a signed `webhook.test` message now and print how the receiver answered.

    Exit 0 on a 2xx answer, 1 otherwise. It changes nothing: a disabled webhook stays
    disabled until `webhooks enable`.

    Examples:

    \b
      opsconsole webhooks test ops-chat
    """
    sent = service().test_webhook(name)
    if as_json:
        output.emit_json(sent.to_dict())
    else:
        verdict = "delivered" if sent.ok else "failed"
        output.line(f"webhook {sent.webhook}: {verdict}: {sent.status} ({sent.url})")
    if not sent.ok:
        raise typer.Exit(ExitCode.JOB_FAILED)


@webhooks_app.command("enable", cls=Command)
def enable(name: NameArg, as_json: JsonOpt = False) -> None:
    """Enable a webhook that disabled itself after failed deliveries (admin role).

    Its failures are reset; the events that came while it was disabled are delivered now.

    Examples:

    \b
      opsconsole webhooks enable ops-chat
    """
    view = service().enable_webhook(name)
    if as_json:
        output.emit_json(view.to_dict())
        return
    output.line(f"webhook {view.name}: {view.state}")


def register(app: Any) -> None:
    app.add_typer(webhooks_app, name="webhooks")
