"""API token use cases: mint (the secret is shown once), list, read, revoke.

A token can mint only scopes it holds itself (after expansion); minting for
another tenant needs ``tenants:write``.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from fastapi import HTTPException

from xdp47_api.auth import Principal, not_found_tenant
from xdp47_api.minting import mint_token
from xdp47_api.pagination import Page
from xdp47_api.state import Services
from xdp47_api.usecases.errors import not_found
from xdp47_common.models import (
    ApiToken,
    ApiTokenCreate,
    ApiTokenCreated,
    Scope,
    expand_scopes,
)

__all__ = ["find", "get", "list_page", "mint", "names", "revoke"]


async def _target_tenant(
    services: Services, principal: Principal, tenant: str | None
) -> str:
    if tenant is None or tenant == principal.tenant:
        return principal.tenant
    if not principal.has(Scope.TENANTS_WRITE):
        raise not_found_tenant(tenant)
    if await services.repos.tenants.get(tenant) is None:
        raise not_found_tenant(tenant)
    return tenant


async def mint(
    services: Services, principal: Principal, body: ApiTokenCreate
) -> ApiTokenCreated:
    """Mint a token: 403 for a scope the caller lacks, 404 for a tenant it may
    not mint for."""
    wanted = expand_scopes(set(body.scopes))
    missing = sorted(wanted - principal.scopes)
    if missing:
        raise HTTPException(
            status_code=403,
            detail="scopes: a token can mint only scopes it holds; this one lacks "
            + ", ".join(f"'{s.value}'" for s in missing),
        )
    tenant = await _target_tenant(services, principal, body.tenant)
    return await mint_token(
        services.repos.tokens,
        tenant=tenant,
        name=body.name,
        scopes=body.scopes,
        created_by=principal.token_id,
        expires_in_days=body.expires_in_days,
    )


async def list_page(
    services: Services, tenant: str, *, limit: int, cursor: str | None
) -> Page[ApiToken]:
    return await services.repos.tokens.list(tenant, limit=limit, cursor=cursor)


async def find(services: Services, tenant: str, token_id: UUID) -> ApiToken | None:
    """The tenant's token, ``None`` when there is none."""
    return await services.repos.tokens.get(tenant, token_id)


async def names(
    services: Services, tenant: str, ids: Iterable[UUID]
) -> dict[UUID, str]:
    """The names of the tenant's tokens among ``ids`` (for texts that name them)."""
    return await services.repos.tokens.names(tenant, ids)


async def get(services: Services, tenant: str, token_id: UUID) -> ApiToken:
    """The tenant's token, or 404."""
    found = await services.repos.tokens.get(tenant, token_id)
    if found is None:
        raise not_found("token", token_id)
    return found


async def revoke(services: Services, tenant: str, token_id: UUID) -> ApiToken:
    """Revoke the tenant's token (idempotent), or 404."""
    revoked = await services.repos.tokens.revoke(tenant, token_id)
    if revoked is None:
        raise not_found("token", token_id)
    return revoked
