"""``/ui/devices/{id}``: one device, what it reports, its latest heartbeats and its
rollout history, each failure with its code and the sentence that explains it. It
reads the same use case as ``GET /api/devices/{id}``."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from xdp47_api.state import ServicesDep
from xdp47_api.ui.pages._common import call_api, page_scope
from xdp47_api.ui.session import SessionDep, UiError
from xdp47_api.ui.templating import render
from xdp47_api.usecases import devices
from xdp47_common.models import Scope
from xdp47_common.models.base import DEVICE_ID_PATTERN

__all__ = ["router"]

router = APIRouter(prefix="/ui/devices", include_in_schema=False)

_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)


@router.get("/{device_id}")
async def device_page(
    request: Request, device_id: str, session: SessionDep, services: ServicesDep
) -> Response:
    page_scope(session, Scope.DEVICES_READ)
    # A malformed id names no device: the same answer as another tenant's.
    if not _DEVICE_ID.match(device_id):
        raise UiError(404, f"device '{device_id[:128]}' not found")
    device = await call_api(devices.detail(services, session.tenant, device_id))
    return render(request, "device.html", session, d=device)
