"""Device routes: list with filters, read one, claim (which issues a credential)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from xdp47_api.auth import Principal, require
from xdp47_api.pagination import CursorParam, LimitParam, publish_page
from xdp47_api.routes._responses import errors
from xdp47_api.state import ServicesDep
from xdp47_api.usecases import devices
from xdp47_api.usecases.devices import DeviceFilter
from xdp47_common.models import (
    Device,
    DeviceClaim,
    DeviceClaimed,
    DeviceDetail,
    DeviceSort,
    DeviceStatus,
    Scope,
)
from xdp47_common.models.base import DEVICE_ID_PATTERN, NUL_FREE_PATTERN
from xdp47_common.selectors import SelectorError, SelectorJson, parse_selector

__all__ = ["router"]

router = APIRouter(prefix="/api/devices", tags=["devices"])

DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, max_length=128)]


def _parse_labels(raw: list[str]) -> SelectorJson:
    try:
        return parse_selector("\n".join(raw)).to_json()
    except SelectorError as exc:
        raise HTTPException(status_code=422, detail=f"query.label: {exc}") from None


@router.get(
    "",
    response_model=list[Device],
    summary="List devices",
    responses=errors(),
)
async def list_devices(
    request: Request,
    response: Response,
    principal: Annotated[Principal, require(Scope.DEVICES_READ)],
    services: ServicesDep,
    label: Annotated[
        list[str],
        Query(
            description="A selector (k=v, k!=v, k in (a,b), k notin (a,b), k, "
            "!k; comma-separated); repeat for more (all must hold)."
        ),
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
    sort: Annotated[
        DeviceSort,
        Query(description="id, last_seen (newest first), version or status."),
    ] = DeviceSort.ID,
    status: DeviceStatus | None = None,
    version: Annotated[
        str | None,
        Query(max_length=128, pattern=NUL_FREE_PATTERN, description="current_version"),
    ] = None,
    channel: Annotated[
        str | None, Query(max_length=32, pattern=NUL_FREE_PATTERN)
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=128, pattern=NUL_FREE_PATTERN, description="id prefix"),
    ] = None,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> list[Device]:
    filt = DeviceFilter(
        labels=_parse_labels(label),
        status=status,
        version=version,
        channel=channel,
        id_prefix=q,
    )
    page = await devices.list_page(
        services, principal.tenant, filt, limit=limit, cursor=cursor, sort=sort
    )
    return publish_page(request, response, page)


@router.get(
    "/{device_id}",
    response_model=DeviceDetail,
    summary="Read a device, its latest heartbeats and its rollout history",
    responses=errors(404),
)
async def get_device(
    device_id: DeviceIdPath,
    principal: Annotated[Principal, require(Scope.DEVICES_READ)],
    services: ServicesDep,
) -> DeviceDetail:
    return await devices.detail(services, principal.tenant, device_id)


@router.post(
    "/claim",
    response_model=DeviceClaimed,
    status_code=201,
    summary="Claim a device (idempotent per device_id; rotates the credential)",
    responses={
        **errors(404, 413),
        200: {"model": DeviceClaimed, "description": "Claimed before: re-claimed"},
    },
)
async def claim_device(
    body: DeviceClaim,
    response: Response,
    principal: Annotated[Principal, require(Scope.DEVICES_CLAIM)],
    services: ServicesDep,
) -> DeviceClaimed:
    claimed, created = await devices.claim(services, principal, body)
    response.status_code = 201 if created else 200
    return claimed
