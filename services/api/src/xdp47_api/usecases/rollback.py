"""Roll back a rollout: check it may be rolled back and that devices would go
back, then publish ``rollout.rollback`` for the scheduler; each request is recorded in
the audit trail (``rollout.rollback.requested``), refused ones too.

The scheduler, in one transaction, aborts the rollout if it runs and creates and
starts the rollback rollout (kind ``rollback``) under the id answered here; the
rules (which statuses and kinds accept it) are the core's
(``xdp47_common.rollout.rollback``). 409 when the rollout cannot be rolled back
or no device applied its artifact and still runs it; 404 for another tenant's
rollout or policy.
"""

from __future__ import annotations

from uuid import UUID, uuid4

from fastapi import HTTPException

from xdp47_api.auth import Principal
from xdp47_api.state import Services
from xdp47_api.usecases.errors import conflict, not_found
from xdp47_api.usecases.rollout_commands import publish_command, record_request
from xdp47_api.usecases.rollouts import get
from xdp47_common.logging import REQUEST_ID
from xdp47_common.messages import RollbackRollout
from xdp47_common.models import RollbackAnswer, RollbackRequest, Rollout
from xdp47_common.rollout.rollback import rollback_refusal

__all__ = ["devices_to_send_back", "rollback", "rollbacks_of"]


async def devices_to_send_back(
    services: Services, tenant: str, rollout_id: UUID
) -> int:
    """How many devices a rollback of the tenant's rollout would send back now."""
    return await services.repos.rollouts.rollbackable(tenant, rollout_id)


async def rollbacks_of(services: Services, tenant: str, rollout_id: UUID) -> list[UUID]:
    """The rollbacks of the tenant's rollout, oldest first."""
    return await services.repos.rollouts.rollbacks_of(tenant, rollout_id)


async def rollback(
    services: Services,
    principal: Principal,
    rollout_id: UUID,
    body: RollbackRequest | None = None,
) -> RollbackAnswer:
    """Publish the rollback of the caller's rollout; the answer names the
    rollback rollout the scheduler creates.

    Raises ``HTTPException`` 404 (no such rollout or policy) or 409, and
    ``ServiceUnavailable`` when the broker refuses.
    """
    action = "rollout.rollback.requested"
    try:
        rollout = await get(services, principal.tenant, rollout_id)
    except HTTPException as exc:
        await record_request(services, principal, action, rollout_id, None, exc)
        raise
    try:
        policy_id, devices = await _check(services, principal, rollout, body)
    except HTTPException as refused:
        await record_request(services, principal, action, rollout_id, rollout, refused)
        raise
    message = RollbackRollout(
        tenant=principal.tenant,
        rollout_id=rollout.id,
        rollback_id=uuid4(),
        policy_id=policy_id,
        requested_by=principal.actor,
        actor_name=principal.display_name,
        request_id=REQUEST_ID.get(),
    )
    await publish_command(
        services,
        principal,
        "rollback",
        rollout,
        message,
        rollback_id=str(message.rollback_id),
    )
    return RollbackAnswer(
        **rollout.model_dump(), rollback_id=message.rollback_id, devices=devices
    )


async def _check(
    services: Services,
    principal: Principal,
    rollout: Rollout,
    body: RollbackRequest | None,
) -> tuple[UUID | None, int]:
    """The policy the rollback runs under (None: the rollout's) and how many
    devices it would send back; ``HTTPException`` 404/409 when it cannot."""
    refusal = rollback_refusal(rollout.kind, rollout.status)
    if refusal is not None:
        raise conflict(f"cannot roll back: {refusal}")
    policy_id: UUID | None = None
    if body is not None and body.policy is not None:
        policy_id = await services.repos.policies.id_of(principal.tenant, body.policy)
        if policy_id is None:
            raise not_found("policy", body.policy)
    devices = await services.repos.rollouts.rollbackable(principal.tenant, rollout.id)
    if devices == 0:
        raise conflict(
            "cannot roll back: no device applied the rollout's artifact and still "
            "runs it (with an earlier artifact to go back to)"
        )
    return policy_id, devices
