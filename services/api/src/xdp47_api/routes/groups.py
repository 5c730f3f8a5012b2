"""Device group routes: create, list, read, update and delete named groups of a
tenant's devices, and list a group's members with their count. The rules live
in ``usecases.groups``."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from xdp47_api.auth import Principal, require
from xdp47_api.pagination import CursorParam, LimitParam, publish_page
from xdp47_api.routes._responses import errors
from xdp47_api.state import ServicesDep
from xdp47_api.usecases import groups
from xdp47_common.models import DeviceSort, Scope
from xdp47_common.models.group import (
    DeviceGroup,
    DeviceGroupCreate,
    DeviceGroupUpdate,
    GroupMembers,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/groups", tags=["groups"])


@router.get(
    "",
    response_model=list[DeviceGroup],
    summary="List device groups",
    responses=errors(),
)
async def list_groups(
    request: Request,
    response: Response,
    principal: Annotated[Principal, require(Scope.DEVICES_READ)],
    services: ServicesDep,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> list[DeviceGroup]:
    page = await groups.list_page(
        services, principal.tenant, limit=limit, cursor=cursor
    )
    return publish_page(request, response, page)


@router.post(
    "",
    response_model=DeviceGroup,
    status_code=201,
    summary="Create a static (devices) or dynamic (selector) device group",
    responses=errors(404, 409, 413),
)
async def create_group(
    body: DeviceGroupCreate,
    principal: Annotated[Principal, require(Scope.DEVICES_WRITE)],
    services: ServicesDep,
) -> DeviceGroup:
    return await groups.create(services, principal, body)


@router.get(
    "/{group_id}",
    response_model=DeviceGroup,
    summary="Read a device group with its member count",
    responses=errors(404),
)
async def get_group(
    group_id: UUID,
    principal: Annotated[Principal, require(Scope.DEVICES_READ)],
    services: ServicesDep,
) -> DeviceGroup:
    return await groups.get(services, principal.tenant, group_id)


@router.patch(
    "/{group_id}",
    response_model=DeviceGroup,
    summary="Rename a group, or replace its selector (dynamic) or members (static)",
    responses=errors(404, 409, 413),
)
async def update_group(
    group_id: UUID,
    principal: Annotated[Principal, require(Scope.DEVICES_WRITE)],
    services: ServicesDep,
    # Optional, so that another tenant's (or an unknown) id is a 404 whatever
    # the body; an empty body changes nothing.
    body: DeviceGroupUpdate | None = None,
) -> DeviceGroup:
    return await groups.update(
        services, principal.tenant, group_id, body or DeviceGroupUpdate()
    )


@router.delete(
    "/{group_id}",
    status_code=204,
    summary="Delete a group no rollout targets",
    responses=errors(404, 409),
)
async def delete_group(
    group_id: UUID,
    principal: Annotated[Principal, require(Scope.DEVICES_WRITE)],
    services: ServicesDep,
) -> Response:
    await groups.delete(services, principal.tenant, group_id)
    return Response(status_code=204)


@router.get(
    "/{group_id}/devices",
    response_model=GroupMembers,
    summary="A page of a group's members and their count",
    description="A dynamic group's members are the devices its selector matches "
    "now. Pages like GET /api/devices (Link / X-Next-Cursor).",
    responses=errors(404),
)
async def group_devices(
    request: Request,
    response: Response,
    group_id: UUID,
    principal: Annotated[Principal, require(Scope.DEVICES_READ)],
    services: ServicesDep,
    sort: Annotated[DeviceSort, Query()] = DeviceSort.ID,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> GroupMembers:
    group, page = await groups.members(
        services, principal.tenant, group_id, limit=limit, cursor=cursor, sort=sort
    )
    devices = publish_page(request, response, page)
    return GroupMembers(group=group, count=group.count, devices=devices)
