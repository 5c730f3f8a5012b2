"""Tenant routes: the caller's own tenant, or all of them for a platform operator
(``tenants:write``), who alone may create tenants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from xdp47_api.auth import Principal, require
from xdp47_api.pagination import CursorParam, LimitParam, publish_page
from xdp47_api.routes._responses import errors
from xdp47_api.state import ServicesDep
from xdp47_api.usecases import tenants
from xdp47_common.models import Scope, Tenant, TenantCreate

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
