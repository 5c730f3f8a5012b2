"""API token routes: mint (secret shown once), list, read, revoke.

A token can mint only scopes it holds itself (after expansion); minting for
another tenant needs ``tenants:write``.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request, Response

from xdp47_api.auth import Principal, not_found_tenant, require
from xdp47_api.minting import mint_token
from xdp47_api.pagination import CursorParam, LimitParam, publish_page
from xdp47_api.repositories import PgTenantRepository, PgTokenRepository
from xdp47_api.routes._responses import errors, not_found
from xdp47_api.state import ServicesDep
from xdp47_common.models import (
    ApiToken,
    ApiTokenCreate,
    ApiTokenCreated,
    Scope,
    expand_scopes,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/tokens", tags=["tokens"])

TokenWriter = Annotated[Principal, require(Scope.TOKENS_WRITE)]
TokenReader = Annotated[Principal, require(Scope.TOKENS_READ)]


async def _target_tenant(
    principal: Principal, tenant: str | None, services: ServicesDep
) -> str:
    if tenant is None or tenant == principal.tenant:
        return principal.tenant
    if not principal.has(Scope.TENANTS_WRITE):
        raise not_found_tenant(tenant)
    if await PgTenantRepository(services.pool).get(tenant) is None:
        raise not_found_tenant(tenant)
    return tenant


@router.post(
    "",
    response_model=ApiTokenCreated,
    status_code=201,
    summary="Mint a token (the secret is returned once)",
    responses=errors(404, 413),
)
async def create_token(
    body: ApiTokenCreate, principal: TokenWriter, services: ServicesDep
) -> ApiTokenCreated:
    wanted = expand_scopes(set(body.scopes))
    missing = sorted(wanted - principal.scopes)
    if missing:
        raise HTTPException(
            status_code=403,
            detail="scopes: a token can mint only scopes it holds; this one lacks "
            + ", ".join(f"'{s.value}'" for s in missing),
        )
    tenant = await _target_tenant(principal, body.tenant, services)
    return await mint_token(
        PgTokenRepository(services.pool),
        tenant=tenant,
        name=body.name,
        scopes=body.scopes,
        created_by=principal.token_id,
        expires_in_days=body.expires_in_days,
    )


@router.get(
    "", response_model=list[ApiToken], summary="List tokens", responses=errors()
)
async def list_tokens(
    request: Request,
    response: Response,
    principal: TokenReader,
    services: ServicesDep,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> list[ApiToken]:
    page = await PgTokenRepository(services.pool).list(
        principal.tenant, limit=limit, cursor=cursor
    )
    return publish_page(request, response, page)


@router.get(
    "/{token_id}",
    response_model=ApiToken,
    summary="Read a token",
    responses=errors(404),
)
async def get_token(
    token_id: UUID, principal: TokenReader, services: ServicesDep
) -> ApiToken:
    found = await PgTokenRepository(services.pool).get(principal.tenant, token_id)
    if found is None:
        raise not_found("token", token_id)
    return found


async def _revoke(
    token_id: UUID, principal: Principal, services: ServicesDep
) -> ApiToken:
    revoked = await PgTokenRepository(services.pool).revoke(principal.tenant, token_id)
    if revoked is None:
        raise not_found("token", token_id)
    return revoked


@router.post(
    "/{token_id}:revoke",
    response_model=ApiToken,
    summary="Revoke a token (idempotent)",
    responses=errors(404),
)
async def revoke_token(
    token_id: UUID, principal: TokenWriter, services: ServicesDep
) -> ApiToken:
    return await _revoke(token_id, principal, services)


@router.delete(
    "/{token_id}",
    response_model=ApiToken,
    summary="Revoke a token (alias of :revoke)",
    responses=errors(404),
)
async def delete_token(
    token_id: UUID, principal: TokenWriter, services: ServicesDep
) -> ApiToken:
    return await _revoke(token_id, principal, services)
