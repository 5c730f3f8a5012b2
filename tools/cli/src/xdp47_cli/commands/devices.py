"""``xdp47 devices ls|get``: the fleet, with the API's filters."""

from __future__ import annotations

from typing import Annotated

import typer

from xdp47_cli.commands._common import (
    AllOption,
    LimitOption,
    add_get_command,
    list_into,
    selector_option,
)
from xdp47_cli.errors import guarded
from xdp47_cli.output import Column, OutputFormat, OutputOption, get
from xdp47_common.models import Device, DeviceStatus

__all__ = ["app"]

app = typer.Typer(help="Devices of your tenant.", no_args_is_help=True)

COLUMNS = [
    Column("id", get("id")),
    Column("status", get("status")),
    Column("health", get("health")),
    Column("version", get("current_version")),
    Column("desired", get("desired_version")),
    Column("channel", get("channel")),
    Column("labels", get("labels")),
    Column("last seen", get("last_seen")),
]

add_get_command(app, "/api/devices", Device, str, "DEVICE_ID")


@app.command("ls")
@guarded
def list_devices(
    ctx: typer.Context,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label", "-l", help="key=value or a comma list; repeat, all must match."
        ),
    ] = None,
    status: Annotated[DeviceStatus | None, typer.Option(help="Device status.")] = None,
    version: Annotated[str | None, typer.Option(help="Current version.")] = None,
    channel: Annotated[str | None, typer.Option(help="Channel.")] = None,
    q: Annotated[str | None, typer.Option("-q", "--query", help="Id prefix.")] = None,
    fmt: OutputFormat = OutputOption,
    limit: LimitOption = 100,
    fetch_all: AllOption = False,
) -> None:
    """List devices, filtered by labels, status, version, channel or id prefix."""
    params = {
        "label": selector_option(label or [], "--label").render() or None,
        "status": status.value if status else None,
        "version": version,
        "channel": channel,
        "q": q,
    }
    list_into(
        ctx,
        "/api/devices",
        Device,
        COLUMNS,
        fmt,
        limit=limit,
        fetch_all=fetch_all,
        params=params,
    )
