"""Tenant routes: the caller's own tenant, or all of them for a platform operator
(``tenants:write``), who alone may create tenants and change their settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from xdp47_api.auth import Principal, require
from xdp47_api.pagination import CursorParam, LimitParam, publish_page
from xdp47_api.routes._responses import errors
from xdp47_api.state import ServicesDep
from xdp47_api.usecases import tenants
from xdp47_common.models import Scope, Tenant, TenantCreate, TenantSettings

__all__ = ["router"]

router = APIRouter(prefix="/api/tenants", tags=["tenants"])


@router.get(
    "",
    response_model=list[Tenant],
    summary="List tenants: the caller's own, or all with tenants:write",
    responses=errors(),
)
async def list_tenants(
    request: Request,
    response: Response,
    principal: Annotated[Principal, require(Scope.TENANTS_READ)],
    services: ServicesDep,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> list[Tenant]:
    page = await tenants.visible(services, principal, limit=limit, cursor=cursor)
    return publish_page(request, response, page)


@router.post(
    "",
    response_model=Tenant,
    status_code=201,
    summary="Create a tenant (platform operators)",
    responses=errors(409, 413),
)
async def create_tenant(
    body: TenantCreate,
    principal: Annotated[Principal, require(Scope.TENANTS_WRITE)],
    services: ServicesDep,
) -> Tenant:
    return await tenants.create(services, body)


@router.patch(
    "/{tenant_id}",
    response_model=Tenant,
    summary="Change a tenant's settings (platform operators)",
    description="`four_eyes_approval: true` requires a rollout's approval "
    "(`:approve`) to come from another token than the one that started it. "
    "`default_timezone` (an IANA zone; empty clears it) is the zone of the "
    "tenant's devices that report none and have no `timezone` label. "
    "Fields left out keep their value.",
    responses=errors(404, 413),
)
async def update_tenant(
    tenant_id: str,
    body: TenantSettings,
    principal: Annotated[Principal, require(Scope.TENANTS_WRITE)],
    services: ServicesDep,
) -> Tenant:
    return await tenants.update_settings(services, tenant_id, body)
