"""``xdp47 webhooks ls|add|rm|deliveries|redeliver``: subscribe URLs to rollout
events. ``add`` prints the signing secret once: it cannot be read again."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import typer

from xdp47_cli.commands._common import (
    AllOption,
    LimitOption,
    add_ls_command,
    create_with_secret,
    list_into,
    typed,
)
from xdp47_cli.errors import guarded
from xdp47_cli.output import (
    Column,
    OutputFormat,
    OutputOption,
    emit_record,
    emit_value,
    get,
)
from xdp47_cli.runtime import runtime
from xdp47_common.models.webhook import (
    Webhook,
    WebhookCreated,
    WebhookDeliveryRecord,
)

__all__ = ["app"]

app = typer.Typer(
    help="Webhooks: rollout events POSTed to your URLs.", no_args_is_help=True
)

COLUMNS = [
    Column("id", get("id")),
    Column("url", get("url")),
    Column("events", lambda row: ",".join(row.get("events") or []) or "(all)"),
    Column("description", get("description")),
    Column("created", get("created_at")),
]
DELIVERY_COLUMNS = [
    Column("id", get("id")),
    Column("event", get("event")),
    Column("status", get("status")),
    Column("attempts", get("attempts")),
    Column("last code", get("last_status_code")),
    Column("last error", get("last_error")),
    Column("created", get("created_at")),
]

add_ls_command(app, "/api/webhooks", Webhook, COLUMNS, "List the tenant's webhooks.")


@app.command("add")
@guarded
def add_webhook(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(metavar="URL", help="http(s) URL to POST to.")],
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event", "-e", help="Event name (repeat or comma-separate); default all."
        ),
    ] = None,
    description: Annotated[str | None, typer.Option(help="A note.")] = None,
    fmt: OutputFormat = OutputOption,
) -> None:
    """Subscribe URL. The signing secret is printed once."""
    events = [e.strip() for v in event or [] for e in v.split(",") if e.strip()]
    body: dict[str, object] = {"url": url, "events": events}
    if description is not None:
        body["description"] = description
    create_with_secret(ctx, "/api/webhooks", body, WebhookCreated, "secret", fmt)


@app.command("rm")
@guarded
def remove_webhook(
    ctx: typer.Context,
    webhook_id: Annotated[UUID, typer.Argument(metavar="WEBHOOK_ID")],
) -> None:
    """Delete a webhook and its deliveries."""
    with runtime(ctx).client() as client:
        client.request("DELETE", f"/api/webhooks/{webhook_id}")
    emit_value(f"webhook {webhook_id} deleted")


@app.command("deliveries")
@guarded
def list_deliveries(
    ctx: typer.Context,
    webhook_id: Annotated[UUID, typer.Argument(metavar="WEBHOOK_ID")],
    status: Annotated[
        str | None, typer.Option(help="pending, delivered or parked.")
    ] = None,
    fmt: OutputFormat = OutputOption,
    limit: LimitOption = 100,
    fetch_all: AllOption = False,
) -> None:
    """A webhook's deliveries, newest first, with the last error of each."""
    list_into(
        ctx,
        f"/api/webhooks/{webhook_id}/deliveries",
        WebhookDeliveryRecord,
        DELIVERY_COLUMNS,
        fmt,
        limit=limit,
        fetch_all=fetch_all,
        params={"status": status},
    )


@app.command("redeliver")
@guarded
def redeliver(
    ctx: typer.Context,
    webhook_id: Annotated[UUID, typer.Argument(metavar="WEBHOOK_ID")],
    delivery_id: Annotated[UUID, typer.Argument(metavar="DELIVERY_ID")],
    fmt: OutputFormat = OutputOption,
) -> None:
    """Deliver a parked (or delivered) delivery again, with fresh retries."""
    with runtime(ctx).client() as client:
        again = client.post(
            f"/api/webhooks/{webhook_id}/deliveries/{delivery_id}:redeliver"
        )
    typed(WebhookDeliveryRecord, again)
    emit_record(again, fmt)
