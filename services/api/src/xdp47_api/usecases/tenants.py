"""Tenant use cases: the tenants a caller may see, and creating one."""

from __future__ import annotations

from xdp47_api.auth import Principal
from xdp47_api.pagination import Page
from xdp47_api.state import Services
from xdp47_api.usecases.errors import conflict
from xdp47_common.models import Scope, Tenant, TenantCreate

__all__ = ["create", "visible"]


async def visible(
    services: Services, principal: Principal, *, limit: int, cursor: str | None
) -> Page[Tenant]:
    """Every tenant for a platform operator (``tenants:write``), else the
    caller's own."""
    repo = services.repos.tenants
    if principal.has(Scope.TENANTS_WRITE):
        return await repo.list_all(limit=limit, cursor=cursor)
    own = await repo.get(principal.tenant)
    return Page([] if own is None or cursor else [own], None)


async def create(services: Services, body: TenantCreate) -> Tenant:
    """Create a tenant; 409 when the id is taken."""
    created = await services.repos.tenants.create(body.id, body.name or body.id)
    if created is None:
        raise conflict(f"id: tenant '{body.id}' already exists")
    return created
