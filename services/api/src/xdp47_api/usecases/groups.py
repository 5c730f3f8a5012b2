"""Device group use cases: named sets of a tenant's devices (a static list, or a
dynamic group's saved selector) that rollouts can target."""

from __future__ import annotations

from uuid import UUID

from xdp47_api.auth import Principal
from xdp47_api.pagination import Page
from xdp47_api.repositories import DeviceFilter
from xdp47_api.state import Services
from xdp47_api.usecases.errors import not_found
from xdp47_common.models import Device, DeviceSort
from xdp47_common.models.group import DeviceGroup, DeviceGroupCreate, DeviceGroupUpdate

__all__ = ["create", "delete", "get", "list_page", "members", "update"]


async def list_page(
    services: Services, tenant: str, *, limit: int, cursor: str | None
) -> Page[DeviceGroup]:
    return await services.repos.groups.list(tenant, limit=limit, cursor=cursor)


async def create(
    services: Services, principal: Principal, body: DeviceGroupCreate
) -> DeviceGroup:
    """Create a group of the caller's tenant (404 for another tenant)."""
    principal.own_tenant(body.tenant)
    return await services.repos.groups.create(body)


async def get(services: Services, tenant: str, group_id: UUID) -> DeviceGroup:
    """The tenant's group with its member count, or 404."""
    found = await services.repos.groups.get(tenant, group_id)
    if found is None:
        raise not_found("group", group_id)
    return found


async def update(
    services: Services, tenant: str, group_id: UUID, body: DeviceGroupUpdate
) -> DeviceGroup:
    """Rename the tenant's group or replace its selector or members, or 404."""
    found = await services.repos.groups.update(tenant, group_id, body)
    if found is None:
        raise not_found("group", group_id)
    return found


async def delete(services: Services, tenant: str, group_id: UUID) -> None:
    """Delete the tenant's group (409 while a rollout targets it), or 404."""
    if not await services.repos.groups.delete(tenant, group_id):
        raise not_found("group", group_id)


async def members(
    services: Services,
    tenant: str,
    group_id: UUID,
    *,
    limit: int,
    cursor: str | None,
    sort: DeviceSort = DeviceSort.ID,
) -> tuple[DeviceGroup, Page[Device]]:
    """The tenant's group (or 404) and a page of its members: a dynamic group's
    are the devices its selector matches now."""
    group = await get(services, tenant, group_id)
    page = await services.repos.devices.list(
        tenant, DeviceFilter(group_id=group_id), limit=limit, cursor=cursor, sort=sort
    )
    return group, page
