"""Device use cases: the fleet list with filters, one device, and the claim
that issues a device credential."""

from __future__ import annotations

import uuid

from xdp47_api.auth import Principal
from xdp47_api.pagination import Page
from xdp47_api.repositories import DeviceFilter
from xdp47_api.state import Services
from xdp47_api.usecases.errors import not_found
from xdp47_common.models import (
    Device,
    DeviceClaim,
    DeviceClaimed,
    DeviceDetail,
    DeviceSort,
)
from xdp47_common.tokens import SecretKind, hash_secret, new_secret

__all__ = ["DeviceFilter", "claim", "detail", "list_page"]


async def list_page(
    services: Services,
    tenant: str,
    filt: DeviceFilter,
    *,
    limit: int,
    cursor: str | None,
    sort: DeviceSort = DeviceSort.ID,
) -> Page[Device]:
    return await services.repos.devices.list(
        tenant, filt, limit=limit, cursor=cursor, sort=sort
    )


async def detail(services: Services, tenant: str, device_id: str) -> DeviceDetail:
    """The tenant's device with its heartbeats and rollout history, or 404."""
    device = await services.repos.devices.detail(tenant, device_id)
    if device is None:
        raise not_found("device", device_id)
    return device


async def claim(
    services: Services, principal: Principal, body: DeviceClaim
) -> tuple[DeviceClaimed, bool]:
    """Claim a device of the caller's tenant, rotating its credential.

    Returns:
        The claim's answer (with the new credential, shown once) and whether
        the device is new.
    """
    principal.own_tenant(body.tenant)
    device_id = body.device_id or f"dev-{uuid.uuid4().hex[:16]}"
    credential = new_secret(SecretKind.DEVICE_CREDENTIAL)
    created = await services.repos.devices.claim(
        body.tenant,
        device_id,
        dict(body.labels),
        body.channel,
        hash_secret(credential),
        dict(body.properties),
        body.timezone,
    )
    claimed = DeviceClaimed(
        device_id=device_id,
        tenant=body.tenant,
        credential=credential,
        ingest_url=services.settings.ingest_public_url,
    )
    return claimed, created
