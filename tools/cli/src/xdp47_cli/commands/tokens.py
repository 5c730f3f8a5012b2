"""``xdp47 tokens ls|create|revoke``. ``create`` prints the secret once: the API
stores only its hash."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import typer

from xdp47_cli.commands._common import (
    add_ls_command,
    create_with_secret,
    typed,
)
from xdp47_cli.errors import CliError, guarded
from xdp47_cli.output import (
    Column,
    OutputFormat,
    OutputOption,
    emit_record,
    get,
)
from xdp47_cli.runtime import runtime
from xdp47_common.models import ApiToken, ApiTokenCreated, Scope

__all__ = ["app"]

app = typer.Typer(help="API tokens of your tenant.", no_args_is_help=True)

COLUMNS = [
    Column("id", get("id")),
    Column("name", get("name")),
    Column("prefix", get("prefix")),
    Column("scopes", get("scopes")),
    Column("expires", get("expires_at")),
    Column("revoked", get("revoked_at")),
    Column("last used", get("last_used_at")),
]

add_ls_command(
    app,
    "/api/tokens",
    ApiToken,
    COLUMNS,
    "List the tenant's tokens (never their secrets).",
)


def _scopes(values: list[str]) -> list[str]:
    out: list[str] = []
    known = {s.value for s in Scope}
    for value in values:
        for scope in filter(None, (v.strip() for v in value.split(","))):
            if scope not in known:
                choices = ", ".join(sorted(known))
                raise CliError(f"--scope: unknown scope {scope!r}; one of {choices}")
            out.append(scope)
    if not out:
        raise CliError("--scope: give at least one scope")
    return out


@app.command("create")
@guarded
def create_token(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Token name.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", "-s", help="Scope; repeat or comma-separate."),
    ],
    expires_in_days: Annotated[
        int | None, typer.Option(help="Lifetime in days (API default 90).")
    ] = None,
    never_expires: Annotated[
        bool, typer.Option("--never-expires", help="A token without expiry.")
    ] = False,
    tenant: Annotated[
        str | None, typer.Option(help="Another tenant (needs tenants:write).")
    ] = None,
    fmt: OutputFormat = OutputOption,
) -> None:
    """Mint a token. The secret is printed once and cannot be read again."""
    if never_expires and expires_in_days is not None:
        raise CliError("--never-expires and --expires-in-days exclude each other")
    body: dict[str, object] = {"name": name, "scopes": _scopes(scope)}
    if never_expires:
        body["expires_in_days"] = None
    elif expires_in_days is not None:
        body["expires_in_days"] = expires_in_days
    if tenant is not None:
        body["tenant"] = tenant
    create_with_secret(ctx, "/api/tokens", body, ApiTokenCreated, "token", fmt)


@app.command("revoke")
@guarded
def revoke_token(
    ctx: typer.Context,
    token_id: Annotated[UUID, typer.Argument(metavar="TOKEN_ID")],
    fmt: OutputFormat = OutputOption,
) -> None:
    """Revoke a token (idempotent)."""
    with runtime(ctx).client() as client:
        revoked = client.post(f"/api/tokens/{token_id}:revoke")
    typed(ApiToken, revoked)
    emit_record(revoked, fmt)
