"""A rollout's device list on its page: each device of the written waves with its
progress state and reason, by wave, a "failed only" filter, one keyset page at a
time (``usecases.progress.devices``: an index range, so a 100k-device
wave pages as fast as a small one). While the rollout is live the list re-fetches
its current page on every live refresh of the page (``hx-trigger="sse:live"``)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from xdp47_api.pagination import CursorParam
from xdp47_api.state import Services, ServicesDep
from xdp47_api.ui.pages._common import find_rollout, page_scope
from xdp47_api.ui.session import SessionDep, UiSession
from xdp47_api.ui.templating import render
from xdp47_api.usecases import progress
from xdp47_common.models import ProgressState, Rollout, Scope

__all__ = ["PAGE_SIZE", "device_list", "router"]

router = APIRouter(prefix="/ui/rollouts", include_in_schema=False)

PAGE_SIZE = 50
FRAGMENT = "_rollout_devices.html"


def _url(rollout_id: UUID, **params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"/ui/rollouts/{rollout_id}/devices" + (f"?{query}" if query else "")


async def device_list(
    services: Services,
    session: UiSession,
    rollout: Rollout,
    *,
    wave: int | None = None,
    state: ProgressState | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The context of ``_rollout_devices.html`` (with ``r``, the rollout)."""
    page = await progress.devices(
        services,
        session.tenant,
        rollout.id,
        wave=wave,
        state=state,
        limit=PAGE_SIZE,
        cursor=cursor,
    )
    sv = state.value if state else None
    return {
        "devices": page.items,
        "filter_wave": wave,
        "filter_state": sv,
        "cursor": cursor,
        "self_url": _url(rollout.id, wave=wave, state=sv, cursor=cursor),
        "next_url": _url(rollout.id, wave=wave, state=sv, cursor=page.next_cursor)
        if page.next_cursor
        else None,
        "wave_urls": [(None, _url(rollout.id, state=sv))]
        + [
            (w, _url(rollout.id, wave=w, state=sv)) for w in range(1, rollout.waves + 1)
        ],
        "first_url": _url(rollout.id, wave=wave, state=sv),
        "all_url": _url(rollout.id, wave=wave),
        "failed_url": _url(rollout.id, wave=wave, state="failed"),
    }


@router.get("/{rollout_id}/devices")
async def devices_fragment(
    rollout_id: UUID,
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    wave: Annotated[int | None, Query(ge=1, le=1000)] = None,
    state: ProgressState | None = None,
    cursor: CursorParam = None,
) -> Response:
    page_scope(session, Scope.ROLLOUTS_READ)
    rollout = await find_rollout(services, session, rollout_id)
    ctx = await device_list(
        services, session, rollout, wave=wave, state=state, cursor=cursor
    )
    return render(request, FRAGMENT, session, r=rollout, **ctx)
