"""Progress routes of a rollout: its progress read model (devices per wave and
state, the runs) and its devices one page at a time, with their state and reason.
The web UI and the CLI show exactly these numbers."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from xdp47_api.auth import Principal, require
from xdp47_api.pagination import CursorParam, LimitParam, publish_page
from xdp47_api.routes._responses import errors
from xdp47_api.state import ServicesDep
from xdp47_api.usecases import progress
from xdp47_common.models import (
    AnalysisReport,
    ProgressState,
    RolloutDevice,
    RolloutProgress,
    Scope,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/rollouts", tags=["rollouts"])

Reader = Annotated[Principal, require(Scope.ROLLOUTS_READ)]


@router.get(
    "/{rollout_id}/progress",
    response_model=RolloutProgress,
    summary="Devices per wave and state, and the runs",
    description="The one read model of a rollout's progress: per wave, how many "
    "devices succeeded, failed, were skipped (by reason), are updating, are "
    "waiting for their wave, or were not started because the rollout ended; the "
    "plan's size of each wave; the runs of every attempt; and how many devices "
    "an abort would leave on their version (`not_updated`). See docs/api.md.",
    responses=errors(404),
)
async def get_progress(
    rollout_id: UUID, principal: Reader, services: ServicesDep
) -> RolloutProgress:
    return await progress.progress(services, principal.tenant, rollout_id)


@router.get(
    "/{rollout_id}/analysis",
    response_model=AnalysisReport,
    summary="Where each telemetry analysis check of the current wave stands",
    description="The policy's analysis (null: none) and, while the current wave "
    "is analysed, each check judged now on the running aggregates: the updated "
    "devices' and the baseline's devices, samples and mean, the compared value "
    "and pass, fail or inconclusive. See docs/api.md#telemetry-analysis.",
    responses=errors(404),
)
async def get_analysis(
    rollout_id: UUID, principal: Reader, services: ServicesDep
) -> AnalysisReport:
    return await progress.analysis(services, principal.tenant, rollout_id)


@router.get(
    "/{rollout_id}/devices",
    response_model=list[RolloutDevice],
    summary="The rollout's devices with their state and reason",
    description="Devices of the waves written so far, ordered by device id, "
    "keyset-paginated (`X-Next-Cursor`). Filter by `wave` and by `state` (e.g. "
    "`failed`). A wave's devices are listed once the wave before it started.",
    responses=errors(404),
)
async def list_devices(
    rollout_id: UUID,
    request: Request,
    response: Response,
    principal: Reader,
    services: ServicesDep,
    wave: Annotated[int | None, Query(ge=1, le=1000)] = None,
    state: ProgressState | None = None,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> list[RolloutDevice]:
    page = await progress.devices(
        services,
        principal.tenant,
        rollout_id,
        wave=wave,
        state=state,
        limit=limit,
        cursor=cursor,
    )
    return publish_page(request, response, page)
