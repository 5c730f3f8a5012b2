"""``xdp47-admin``: operator commands that talk to PostgreSQL directly.

The first token of a production install cannot come from the API (minting needs a
token, and the dev token is refused in production). An operator with database
access runs::

    xdp47-admin create-tenant acme --name "Acme Kiosks"
    xdp47-admin mint-token --tenant acme --name bootstrap \\
        --scope tenants:write tokens:write [--expires-in-days 30 | --no-expiry]

Both use the API's repositories (no SQL of their own) on ``XDP47_DB_URL``. The
token's secret is printed alone on stdout, once; everything else goes to stderr.
Exit status: 0 done, 1 refused or failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import NoReturn

from pydantic import ValidationError

from xdp47_api.acting import ADMIN_ACTOR, act_as
from xdp47_api.minting import mint_token
from xdp47_api.repositories.registry import Repositories
from xdp47_common.adapters.pg_probe import (
    DatabaseUnreachable,
    SchemaMissing,
    open_pool,
    schema_required,
)
from xdp47_common.cli import command_line, settings_problem
from xdp47_common.models import ApiTokenCreate, Scope, TenantCreate
from xdp47_common.settings import ControlSettings

__all__ = ["main"]

DEFAULT_EXPIRY_DAYS = 90


class Refused(Exception):
    """A command that cannot be carried out; the message says why."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xdp47-admin",
        description="XDP47 operator commands (direct database access, XDP47_DB_URL).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    tenant = commands.add_parser("create-tenant", help="create a tenant")
    tenant.add_argument("id", help="tenant id: lower-case letters, digits and '-'")
    tenant.add_argument("--name", help="display name (default: the id)")
    token = commands.add_parser(
        "mint-token", help="mint an API token; prints the secret once"
    )
    token.add_argument("--tenant", required=True)
    token.add_argument("--name", required=True, help="what the token is for")
    token.add_argument(
        "--scope",
        dest="scopes",
        action="extend",
        nargs="+",
        required=True,
        metavar="SCOPE",
        help="one or more of: " + ", ".join(s.value for s in Scope),
    )
    expiry = token.add_mutually_exclusive_group()
    expiry.add_argument(
        "--expires-in-days",
        type=int,
        default=DEFAULT_EXPIRY_DAYS,
        help=f"days until it expires (default {DEFAULT_EXPIRY_DAYS})",
    )
    expiry.add_argument("--no-expiry", action="store_true", help="never expires")
    return parser


def _scopes(names: Sequence[str], parser: argparse.ArgumentParser) -> list[Scope]:
    unknown = [n for n in names if n not in Scope._value2member_map_]
    if unknown:
        parser.error(
            "unknown scope "
            + ", ".join(repr(u) for u in unknown)
            + "; known scopes: "
            + ", ".join(s.value for s in Scope)
        )
    return [Scope(n) for n in names]


def _invalid(exc: ValidationError) -> Refused:
    return Refused(
        "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    )


async def _create_tenant(repos: Repositories, args: argparse.Namespace) -> None:
    try:
        body = TenantCreate(id=args.id, name=args.name)
    except ValidationError as exc:
        raise _invalid(exc) from None
    created = await repos.tenants.create(body.id, body.name or body.id)
    if created is None:
        raise Refused(f"tenant '{body.id}' already exists")
    sys.stdout.write(f"created tenant '{created.id}' ({created.name})\n")


async def _mint_token(
    repos: Repositories, args: argparse.Namespace, scopes: list[Scope]
) -> None:
    days = None if args.no_expiry else args.expires_in_days
    try:
        body = ApiTokenCreate(name=args.name, scopes=scopes, expires_in_days=days)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if await repos.tenants.get(args.tenant) is None:
        raise Refused(
            f"tenant '{args.tenant}' does not exist; "
            "create it first with: xdp47-admin create-tenant"
        )
    token = await mint_token(
        repos.tokens,
        tenant=args.tenant,
        name=body.name,
        scopes=body.scopes,
        created_by=None,
        expires_in_days=body.expires_in_days,
    )
    expires = token.expires_at.isoformat() if token.expires_at else "never"
    sys.stderr.write(
        f"minted token {token.id} ({token.prefix}…) for tenant '{token.tenant}', "
        f"scopes {', '.join(token.scopes)}, expires {expires}. "
        "The secret below is shown once; store it now.\n"
    )
    sys.stdout.write(token.token + "\n")


async def _run(db_url: str, args: argparse.Namespace, scopes: list[Scope]) -> None:
    try:
        pool = await open_pool(db_url, min_size=1, max_size=1)
    except DatabaseUnreachable as exc:
        raise Refused(f"PostgreSQL at XDP47_DB_URL is unreachable: {exc}") from None
    repos = Repositories(pool)
    # Its writes are audited like the API's, by the command line as the actor.
    act_as(ADMIN_ACTOR)
    try:
        async with schema_required():
            if args.command == "create-tenant":
                await _create_tenant(repos, args)
            else:
                await _mint_token(repos, args, scopes)
    except SchemaMissing:
        raise Refused(
            "the database at XDP47_DB_URL has no schema; run xdp47-migrate first"
        ) from None
    finally:
        await pool.close()


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"xdp47-admin: {message}\n")
    raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    parser = _parser()
    args = command_line(
        "xdp47-admin", "", argv, distribution="xdp47-api", parser=parser
    )
    scopes = _scopes(args.scopes, parser) if args.command == "mint-token" else []
    try:
        db_url = ControlSettings().db_url
    except ValidationError as exc:
        _fail(settings_problem(exc))
    try:
        asyncio.run(_run(db_url, args, scopes))
    except Refused as exc:
        _fail(str(exc))
