"""``xdp47 tenants ls|create|set``."""

from __future__ import annotations

from typing import Annotated

import typer

from xdp47_cli.commands._common import (
    add_ls_command,
    typed,
)
from xdp47_cli.errors import guarded
from xdp47_cli.output import Column, OutputFormat, OutputOption, emit_record, get
from xdp47_cli.runtime import runtime
from xdp47_common.models import Tenant

__all__ = ["app"]

app = typer.Typer(
    help="Tenants (create and set need tenants:write).", no_args_is_help=True
)

COLUMNS = [
    Column("id", get("id")),
    Column("name", get("name")),
    Column("four eyes", get("four_eyes_approval"), only=OutputFormat.WIDE),
    Column("created", get("created_at")),
]

add_ls_command(
    app,
    "/api/tenants",
    Tenant,
    COLUMNS,
    "List tenants: yours, or all of them with tenants:write.",
)


@app.command("create")
@guarded
def create_tenant(
    ctx: typer.Context,
    tenant_id: Annotated[str, typer.Argument(metavar="ID", help="Tenant id.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    fmt: OutputFormat = OutputOption,
) -> None:
    """Create a tenant."""
    body = {"id": tenant_id} | ({} if name is None else {"name": name})
    with runtime(ctx).client() as client:
        created = client.post("/api/tenants", body)
    typed(Tenant, created)
    emit_record(created, fmt)


@app.command("set")
@guarded
def set_tenant(
    ctx: typer.Context,
    tenant_id: Annotated[str, typer.Argument(metavar="ID", help="Tenant id.")],
    four_eyes: Annotated[
        bool | None,
        typer.Option(
            "--four-eyes/--no-four-eyes",
            help="Require a rollout's approval to come from another token than "
            "the one that started it.",
        ),
    ] = None,
    fmt: OutputFormat = OutputOption,
) -> None:
    """Change a tenant's settings; settings left out keep their value."""
    body = {} if four_eyes is None else {"four_eyes_approval": four_eyes}
    with runtime(ctx).client() as client:
        updated = client.patch(f"/api/tenants/{tenant_id}", body)
    typed(Tenant, updated)
    emit_record(updated, fmt)
