"""``xdp47 groups ls|get|create|members|set|rm``: named device groups, static (a
list of devices) or dynamic (a saved selector), with their live member count."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from xdp47_cli.commands._common import (
    AllOption,
    LimitOption,
    add_get_command,
    list_into,
    selector_option,
    typed,
)
from xdp47_cli.commands.devices import COLUMNS as DEVICE_COLUMNS
from xdp47_cli.errors import CliError, guarded
from xdp47_cli.output import (
    Column,
    OutputFormat,
    OutputOption,
    console,
    emit_data,
    emit_list,
    emit_record,
    get,
)
from xdp47_cli.resolve import group_ref
from xdp47_cli.runtime import runtime
from xdp47_common.models.group import DeviceGroup, GroupMembers

__all__ = ["app"]

app = typer.Typer(
    help="Device groups: static lists or saved selectors.", no_args_is_help=True
)

COLUMNS = [
    Column("id", get("id")),
    Column("name", get("name")),
    Column("kind", get("kind")),
    Column("selector", get("selector_text")),
    Column("devices", get("count")),
    Column("created", get("created_at")),
]

SelectorOption = Annotated[
    list[str] | None,
    typer.Option(
        "--selector",
        "-l",
        help="Dynamic group: a selector (k=v, 'k in (a,b)', ...); repeat.",
    ),
]
DeviceOption = Annotated[
    list[str] | None,
    typer.Option("--device", "-d", help="Static group: a member id; repeat."),
]


@app.command("ls")
@guarded
def list_groups(
    ctx: typer.Context,
    fmt: OutputFormat = OutputOption,
    limit: LimitOption = 100,
    fetch_all: AllOption = False,
) -> None:
    """List the tenant's device groups with their member counts."""
    list_into(
        ctx, "/api/groups", DeviceGroup, COLUMNS, fmt, limit=limit, fetch_all=fetch_all
    )


add_get_command(app, "/api/groups", DeviceGroup, "GROUP", group_ref)


def _target(selector: list[str] | None, device: list[str] | None) -> dict[str, Any]:
    if selector and device:
        raise CliError("give --selector (a dynamic group) or --device (static)")
    if selector:
        return {"selector": selector_option(selector, "--selector").render()}
    if device:
        return {"devices": [d for item in device for d in item.split(",") if d]}
    return {}


@app.command("create")
@guarded
def create_group(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique in the tenant.")],
    selector: SelectorOption = None,
    device: DeviceOption = None,
    tenant: Annotated[str | None, typer.Option(help="Default: the context's.")] = None,
    fmt: OutputFormat = OutputOption,
) -> None:
    """Create a dynamic group (--selector) or a static one (--device ...)."""
    rt = runtime(ctx)
    body = {"tenant": rt.require_tenant(tenant), "name": name}
    body |= _target(selector, device)
    if len(body) == 2:
        raise CliError("give --selector (a dynamic group) or --device (static)")
    with rt.client() as client:
        created = client.post("/api/groups", body)
    typed(DeviceGroup, created)
    emit_record(created, fmt)


@app.command("set")
@guarded
def update_group(
    ctx: typer.Context,
    group: Annotated[str, typer.Argument(metavar="GROUP", help="Id or name.")],
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    selector: SelectorOption = None,
    device: DeviceOption = None,
    fmt: OutputFormat = OutputOption,
) -> None:
    """Rename a group, or replace its selector or its members."""
    body: dict[str, Any] = _target(selector, device)
    if name is not None:
        body["name"] = name
    with runtime(ctx).client() as client:
        group_id = group_ref(client, group)
        updated = client.request("PATCH", f"/api/groups/{group_id}", json=body).json()
    typed(DeviceGroup, updated)
    emit_record(updated, fmt)


@app.command("members")
@guarded
def members(
    ctx: typer.Context,
    group: Annotated[str, typer.Argument(metavar="GROUP", help="Id or name.")],
    limit: LimitOption = 100,
    fmt: OutputFormat = OutputOption,
) -> None:
    """The group's devices (a dynamic group's: matching now) and their count."""
    with runtime(ctx).client() as client:
        group_id = group_ref(client, group)
        answer = client.get(f"/api/groups/{group_id}/devices", params={"limit": limit})
    typed(GroupMembers, answer)
    if fmt.machine:
        emit_data(answer, fmt)
        return
    emit_list(answer["devices"], DEVICE_COLUMNS, fmt)
    found = answer["group"]
    console().print(
        f"{answer['count']} devices in {found['kind']} group {found['name']}"
    )


@app.command("rm")
@guarded
def delete_group(
    ctx: typer.Context,
    group: Annotated[str, typer.Argument(metavar="GROUP", help="Id or name.")],
) -> None:
    """Delete a group no rollout targets."""
    with runtime(ctx).client() as client:
        group_id = group_ref(client, group)
        client.request("DELETE", f"/api/groups/{group_id}")
    console().print(f"deleted group {group} ({group_id})")
