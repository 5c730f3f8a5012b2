"""API token routes: mint (secret shown once), list, read, revoke.

A token can mint only scopes it holds itself (after expansion); minting for
another tenant needs ``tenants:write``.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Request, Response

from xdp47_api.auth import Principal, require
from xdp47_api.pagination import CursorParam, LimitParam, publish_page
from xdp47_api.routes._responses import errors
from xdp47_api.state import ServicesDep
from xdp47_api.usecases import tokens
from xdp47_common.models import ApiToken, ApiTokenCreate, ApiTokenCreated, Scope

__all__ = ["router"]

router = APIRouter(prefix="/api/tokens", tags=["tokens"])

TokenWriter = Annotated[Principal, require(Scope.TOKENS_WRITE)]
TokenReader = Annotated[Principal, require(Scope.TOKENS_READ)]


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
    return await tokens.mint(services, principal, body)


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
    page = await tokens.list_page(
        services, principal.tenant, limit=limit, cursor=cursor
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
    return await tokens.get(services, principal.tenant, token_id)


@router.post(
    "/{token_id}:revoke",
    response_model=ApiToken,
    summary="Revoke a token (idempotent)",
    responses=errors(404),
)
async def revoke_token(
    token_id: UUID, principal: TokenWriter, services: ServicesDep
) -> ApiToken:
    return await tokens.revoke(services, principal.tenant, token_id)


@router.delete(
    "/{token_id}",
    response_model=ApiToken,
    summary="Revoke a token (alias of :revoke)",
    responses=errors(404),
)
async def delete_token(
    token_id: UUID, principal: TokenWriter, services: ServicesDep
) -> ApiToken:
    return await tokens.revoke(services, principal.tenant, token_id)
