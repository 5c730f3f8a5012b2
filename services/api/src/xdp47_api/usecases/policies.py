"""Policy use cases: the gate settings rollouts name."""

from __future__ import annotations

from uuid import UUID

from fastapi import HTTPException

from xdp47_api.auth import Principal
from xdp47_api.pagination import Page
from xdp47_api.state import Services
from xdp47_api.usecases.errors import not_found
from xdp47_common.models import Policy, PolicyCreate

__all__ = ["create", "find", "get", "list_page"]


async def list_page(
    services: Services, tenant: str, *, limit: int, cursor: str | None
) -> Page[Policy]:
    return await services.repos.policies.list(tenant, limit=limit, cursor=cursor)


async def create(
    services: Services, principal: Principal, body: PolicyCreate
) -> Policy:
    """Create a policy of the caller's tenant (404 for another tenant; 409 when
    the tenant has a policy of that name: names are unique per tenant)."""
    principal.own_tenant(body.tenant)
    created = await services.repos.policies.create(body)
    if created is None:
        raise HTTPException(
            status_code=409,
            detail=f"name: a policy named '{body.name}' already exists in this tenant",
        )
    return created


async def find(services: Services, tenant: str, policy_id: UUID) -> Policy | None:
    """The tenant's policy, ``None`` when there is none."""
    return await services.repos.policies.get(tenant, policy_id)


async def get(services: Services, tenant: str, policy_id: UUID) -> Policy:
    """The tenant's policy, or 404."""
    found = await services.repos.policies.get(tenant, policy_id)
    if found is None:
        raise not_found("policy", policy_id)
    return found
