"""The plan preview on a rollout's page: the same use case as
``GET /api/rollouts/{rollout_id}/plan`` (``usecases.rollouts.plan``), with the
endpoint's default cap of devices listed per wave and per reason."""

from __future__ import annotations

from uuid import UUID

from xdp47_api.state import Services
from xdp47_api.ui.pages._common import call_api
from xdp47_api.ui.session import UiSession
from xdp47_api.usecases import rollouts
from xdp47_common.models import RolloutPlan

__all__ = ["PLAN_LIMIT", "load_plan"]

PLAN_LIMIT = 100


async def load_plan(
    services: Services, session: UiSession, rollout_id: UUID
) -> RolloutPlan:
    """The rollout's plan (404 as the UI's error when it is not the tenant's)."""
    rollout = await call_api(rollouts.get(services, session.tenant, rollout_id))
    return await call_api(rollouts.plan(services, rollout, limit=PLAN_LIMIT))
