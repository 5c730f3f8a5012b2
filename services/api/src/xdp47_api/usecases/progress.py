"""Rollout progress use cases: the one read model of a rollout's progress and
its devices page by page (the API, the UI and the CLI show these numbers), and
where its telemetry analysis stands."""

from __future__ import annotations

from uuid import UUID

from xdp47_api.pagination import Page
from xdp47_api.repositories.rollout_progress import FleetActivity
from xdp47_api.state import Services
from xdp47_api.usecases.errors import not_found
from xdp47_common.models import (
    AnalysisReport,
    ProgressState,
    RolloutDevice,
    RolloutProgress,
)

__all__ = ["analysis", "devices", "find", "fleet_activity", "progress"]


async def find(
    services: Services, tenant: str, rollout_id: UUID
) -> RolloutProgress | None:
    """The tenant's rollout's progress, ``None`` when there is no such rollout."""
    return await services.repos.progress.progress(tenant, rollout_id)


async def progress(
    services: Services, tenant: str, rollout_id: UUID
) -> RolloutProgress:
    """The tenant's rollout's progress, or 404."""
    found = await find(services, tenant, rollout_id)
    if found is None:
        raise not_found("rollout", rollout_id)
    return found


async def devices(
    services: Services,
    tenant: str,
    rollout_id: UUID,
    *,
    wave: int | None,
    state: ProgressState | None,
    limit: int,
    cursor: str | None,
) -> Page[RolloutDevice]:
    """A page of the rollout's devices; 404 when the tenant has no such rollout."""
    repo = services.repos.progress
    page = await repo.devices(
        tenant, rollout_id, wave=wave, state=state, limit=limit, cursor=cursor
    )
    if not page.items and cursor is None and not await repo.exists(tenant, rollout_id):
        raise not_found("rollout", rollout_id)
    return page


async def fleet_activity(services: Services, tenant: str) -> FleetActivity:
    return await services.repos.progress.fleet_activity(tenant)


async def analysis(services: Services, tenant: str, rollout_id: UUID) -> AnalysisReport:
    """The tenant's rollout's telemetry analysis on its current wave, or 404."""
    found = await services.repos.analysis.report(tenant, rollout_id)
    if found is None:
        raise not_found("rollout", rollout_id)
    return found
