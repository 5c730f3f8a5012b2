"""Rollout use cases: create drafts, read them, their runs and their plan."""

from __future__ import annotations

from uuid import UUID

from xdp47_api.auth import Principal
from xdp47_api.pagination import Page
from xdp47_api.state import Services
from xdp47_api.usecases.errors import not_found, unprocessable
from xdp47_common.models import Rollout, RolloutCreate, RolloutPlan, RunProgress
from xdp47_common.rollout.policy import default_policy
from xdp47_common.rollout.progress import run_progress
from xdp47_common.rollout.status import (
    TERMINAL_STATUSES,
    RolloutHold,
    RolloutStatus,
)

__all__ = ["create", "get", "list_page", "plan", "runs"]


async def list_page(
    services: Services,
    tenant: str,
    *,
    status: RolloutStatus | None = None,
    hold: RolloutHold | None = None,
    limit: int,
    cursor: str | None,
) -> Page[Rollout]:
    return await services.repos.rollouts.list(
        tenant, status=status, hold=hold, limit=limit, cursor=cursor
    )


async def create(
    services: Services, principal: Principal, body: RolloutCreate
) -> Rollout:
    """Create a draft of the caller's tenant; 422 naming the field when its
    artifact, policy or group is not the tenant's, or the policy's approval
    gates name a wave the rollout does not have."""
    principal.own_tenant(body.tenant)
    repo = services.repos.rollouts
    if not await repo.artifact_exists(body.tenant, body.artifact_id):
        raise unprocessable(
            f"body.artifact_id: artifact '{body.artifact_id}' not found"
        )
    if body.policy_id is not None:
        policy = await services.repos.policies.get(body.tenant, body.policy_id)
        if policy is None:
            raise unprocessable(f"body.policy_id: policy '{body.policy_id}' not found")
        beyond = [w for w in policy.approval_before_waves or () if w > body.waves]
        if beyond:
            raise unprocessable(
                f"body.policy_id: policy '{policy.name}' asks for approval before "
                f"wave {beyond[0]}, but the rollout has {body.waves} waves"
            )
    if body.group_id is not None and not await repo.group_exists(
        body.tenant, body.group_id
    ):
        raise unprocessable(f"body.group_id: group '{body.group_id}' not found")
    return await repo.create(body)


async def get(services: Services, tenant: str, rollout_id: UUID) -> Rollout:
    """The tenant's rollout, or 404."""
    rollout = await services.repos.rollouts.get(tenant, rollout_id)
    if rollout is None:
        raise not_found("rollout", rollout_id)
    return rollout


async def runs(
    services: Services,
    tenant: str,
    rollout_id: UUID,
    *,
    limit: int,
    cursor: str | None,
) -> Page[RunProgress]:
    """The rollout's waves of every attempt, with their progress; 404 when the
    tenant has no such rollout."""
    rollout = await get(services, tenant, rollout_id)
    page = await services.repos.rollouts.runs(rollout_id, limit=limit, cursor=cursor)
    ended = rollout.status in TERMINAL_STATUSES
    items = [
        run_progress(r, attempt_ended=ended or r.attempt < rollout.attempt)
        for r in page.items
    ]
    return Page(items, page.next_cursor)


async def plan(services: Services, rollout: Rollout, *, limit: int) -> RolloutPlan:
    """What starting ``rollout`` now would plan (a draft) or its stored targets
    by wave (once started), device lists capped at ``limit``."""
    return await services.repos.rollouts.plan(
        rollout, default_policy(services.settings), limit=limit
    )
