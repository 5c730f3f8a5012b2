"""Rollout routes: create drafts, read them and their runs, and send the
scheduler the start/retry/abort commands (the scheduler owns status changes)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request, Response

from xdp47_api.auth import Principal, require
from xdp47_api.pagination import CursorParam, LimitParam, Page, publish_page
from xdp47_api.repositories import PgRolloutRepository
from xdp47_api.routes._responses import errors, not_found
from xdp47_api.state import ServicesDep
from xdp47_common.adapters.planning import default_policy
from xdp47_common.bus import PublishFailed
from xdp47_common.messages import AbortRollout, RetryRollout, StartRollout
from xdp47_common.models import (
    Rollout,
    RolloutCreate,
    RolloutPlan,
    RolloutStartAnswer,
    RunProgress,
    Scope,
)
from xdp47_common.rollout.exclusions import Exclusion
from xdp47_common.rollout.progress import run_progress
from xdp47_common.rollout.status import TERMINAL_STATUSES, RolloutStatus
from xdp47_common.web import ServiceUnavailable

__all__ = ["COMMAND_FROM", "router"]

router = APIRouter(prefix="/api/rollouts", tags=["rollouts"])

Reader = Annotated[Principal, require(Scope.ROLLOUTS_READ)]
Writer = Annotated[Principal, require(Scope.ROLLOUTS_WRITE)]

Command = type[StartRollout] | type[RetryRollout] | type[AbortRollout]

# The statuses from which each command means something. Start on a running
# rollout is a harmless repeat (the scheduler's start is idempotent).
COMMAND_FROM: dict[str, frozenset[RolloutStatus]] = {
    "start": frozenset({RolloutStatus.DRAFT, RolloutStatus.RUNNING}),
    "retry": frozenset(
        {RolloutStatus.FAILED, RolloutStatus.PARTIAL, RolloutStatus.RUNNING}
    ),
    "abort": frozenset({RolloutStatus.DRAFT, RolloutStatus.RUNNING}),
}


@router.get(
    "", response_model=list[Rollout], summary="List rollouts", responses=errors()
)
async def list_rollouts(
    request: Request,
    response: Response,
    principal: Reader,
    services: ServicesDep,
    status: RolloutStatus | None = None,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> list[Rollout]:
    page = await PgRolloutRepository(services.pool).list(
        principal.tenant, status=status, limit=limit, cursor=cursor
    )
    return publish_page(request, response, page)


@router.post(
    "",
    response_model=Rollout,
    status_code=201,
    summary="Create a rollout (status draft)",
    responses=errors(404, 413),
)
async def create_rollout(
    body: RolloutCreate, principal: Writer, services: ServicesDep
) -> Rollout:
    principal.own_tenant(body.tenant)
    repo = PgRolloutRepository(services.pool)
    if not await repo.artifact_exists(body.tenant, body.artifact_id):
        raise HTTPException(
            status_code=422,
            detail=f"body.artifact_id: artifact '{body.artifact_id}' not found",
        )
    if body.policy_id is not None and not await repo.policy_exists(
        body.tenant, body.policy_id
    ):
        raise HTTPException(
            status_code=422,
            detail=f"body.policy_id: policy '{body.policy_id}' not found",
        )
    if body.group_id is not None and not await repo.group_exists(
        body.tenant, body.group_id
    ):
        raise HTTPException(
            status_code=422,
            detail=f"body.group_id: group '{body.group_id}' not found",
        )
    return await repo.create(body)


async def _found(
    rollout_id: UUID, principal: Principal, services: ServicesDep
) -> Rollout:
    rollout = await PgRolloutRepository(services.pool).get(principal.tenant, rollout_id)
    if rollout is None:
        raise not_found("rollout", rollout_id)
    return rollout


@router.get(
    "/{rollout_id}",
    response_model=Rollout,
    summary="Read a rollout",
    responses=errors(404),
)
async def get_rollout(
    rollout_id: UUID, principal: Reader, services: ServicesDep
) -> Rollout:
    return await _found(rollout_id, principal, services)


@router.get(
    "/{rollout_id}/runs",
    response_model=list[RunProgress],
    summary="Wave history, ordered by attempt and wave",
    responses=errors(404),
)
async def list_runs(
    rollout_id: UUID,
    request: Request,
    response: Response,
    principal: Reader,
    services: ServicesDep,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> list[RunProgress]:
    rollout = await _found(rollout_id, principal, services)
    page = await PgRolloutRepository(services.pool).runs(
        rollout_id, limit=limit, cursor=cursor
    )
    ended = rollout.status in TERMINAL_STATUSES
    runs = [
        run_progress(r, attempt_ended=ended or r.attempt < rollout.attempt)
        for r in page.items
    ]
    return publish_page(request, response, Page(runs, page.next_cursor))


@router.get(
    "/{rollout_id}/plan",
    response_model=RolloutPlan,
    summary="Devices of each wave, and the devices left out with the reason",
    description="For a draft: what starting now would plan (the scheduler's "
    "planning SQL, read-only), with the devices of the tenant that are excluded "
    "and why (wrong_channel, label_mismatch, in_another_rollout, offline). Once "
    "started: the stored targets by wave with their state. Device lists are capped "
    "at `limit` per wave and per reason; counts are exact.",
    responses=errors(404),
)
async def get_plan(
    rollout_id: UUID,
    principal: Reader,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RolloutPlan:
    rollout = await _found(rollout_id, principal, services)
    return await PgRolloutRepository(services.pool).plan(
        rollout, default_policy(services.settings), limit=limit
    )


async def _command(
    verb: str,
    command: Command,
    rollout_id: UUID,
    principal: Principal,
    services: ServicesDep,
) -> Rollout:
    rollout = await _found(rollout_id, principal, services)
    allowed = COMMAND_FROM[verb]
    if rollout.status not in allowed:
        raise HTTPException(
            status_code=409,
            detail=f"cannot {verb} a rollout in status '{rollout.status.value}'; "
            f"{verb} needs status {' or '.join(sorted(s.value for s in allowed))}",
        )
    message = command(
        tenant=principal.tenant, rollout_id=rollout.id, requested_by=principal.actor
    )
    try:
        await services.bus.publish(
            services.topology.commands,
            services.topology.command_key(message.type),
            message,
        )
    except PublishFailed as exc:
        raise ServiceUnavailable(
            f"the message broker did not accept the {verb} command; retry later"
        ) from exc
    return rollout


_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Command published; the scheduler acts on it"}
}


# Reasons that say a device is not one the selector meant: not counted as
# "excluded" in a start's answer (every other device of the tenant has one).
_NOT_MATCHED = frozenset({Exclusion.WRONG_CHANNEL, Exclusion.LABEL_MISMATCH})


async def _start_answer(rollout: Rollout, services: ServicesDep) -> RolloutStartAnswer:
    """The plan the scheduler would make now: planned devices, and the matched
    ones left out by reason, with a warning for each."""
    plan = await PgRolloutRepository(services.pool).plan(
        rollout, default_policy(services.settings), limit=1
    )
    excluded = {
        reason.value: n
        for reason, n in sorted(plan.excluded_counts.items())
        if reason not in _NOT_MATCHED and n
    }
    warnings: list[str] = []
    incompatible = excluded.get(Exclusion.INCOMPATIBLE.value, 0)
    if incompatible:
        warnings.append(
            f"{incompatible} matched devices are not compatible with the artifact "
            "and are left out"
        )
    held = excluded.get(Exclusion.IN_ANOTHER_ROLLOUT.value, 0)
    if held:
        warnings.append(
            f"{held} matched devices are in another running rollout and are left out"
        )
    offline = excluded.get(Exclusion.OFFLINE.value, 0)
    if offline:
        warnings.append(
            f"{offline} planned devices are offline and would be skipped at their "
            "wave's start"
        )
    if plan.total == 0:
        warnings.append(
            "no eligible devices: the rollout ends at once without updating any "
            "device (aborted, or completed under abort_on_zero_eligible: false)"
        )
    return RolloutStartAnswer(
        **rollout.model_dump(),
        planned=plan.total,
        excluded=excluded,
        warnings=warnings,
    )


@router.post(
    "/{rollout_id}:start",
    response_model=RolloutStartAnswer,
    status_code=202,
    summary="Start a draft rollout",
    description="Answers the rollout with what its plan looks like now: "
    "`planned` devices, `excluded` (devices the selector and channel match that "
    "are left out, counted by reason) and `warnings`. A plan with no eligible "
    "device ends the rollout at once: `aborted` with the reason by default, "
    "`completed` with a reason starting `0 devices updated:` under a policy with "
    "`abort_on_zero_eligible: false`.",
    responses={**errors(404, 409), **_ACCEPTED},
)
async def start_rollout(
    rollout_id: UUID, principal: Writer, services: ServicesDep
) -> RolloutStartAnswer:
    rollout = await _command("start", StartRollout, rollout_id, principal, services)
    if rollout.status is not RolloutStatus.DRAFT:
        return RolloutStartAnswer(**rollout.model_dump())
    return await _start_answer(rollout, services)


@router.post(
    "/{rollout_id}:retry",
    response_model=Rollout,
    status_code=202,
    summary="Retry the failed and skipped devices",
    responses={**errors(404, 409), **_ACCEPTED},
)
async def retry_rollout(
    rollout_id: UUID, principal: Writer, services: ServicesDep
) -> Rollout:
    return await _command("retry", RetryRollout, rollout_id, principal, services)


@router.post(
    "/{rollout_id}:abort",
    response_model=Rollout,
    status_code=202,
    summary="Abort: devices not yet updated keep their version",
    responses={**errors(404, 409), **_ACCEPTED},
)
async def abort_rollout(
    rollout_id: UUID, principal: Writer, services: ServicesDep
) -> Rollout:
    return await _command("abort", AbortRollout, rollout_id, principal, services)
