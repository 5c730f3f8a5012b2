"""Tenant use cases: the tenants a caller may see, creating one, and its
settings."""

from __future__ import annotations

from xdp47_api.auth import Principal
from xdp47_api.pagination import Page
from xdp47_api.state import Services
from xdp47_api.usecases.errors import conflict, not_found
from xdp47_common.models import Scope, Tenant, TenantCreate, TenantSettings

__all__ = ["create", "update_settings", "visible"]


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


async def update_settings(
    services: Services, tenant_id: str, body: TenantSettings
) -> Tenant:
    """Change a tenant's settings (a platform operator's); 404 when missing."""
    updated = await services.repos.tenants.update_settings(
        tenant_id, body.four_eyes_approval, body.default_timezone
    )
    if updated is None:
        raise not_found("tenant", tenant_id)
    return updated
