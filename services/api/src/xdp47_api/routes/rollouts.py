"""Rollout routes: create drafts, read them and their runs, and send the
scheduler the start/retry/abort/rollback/pause/resume/approve/promote commands
(the scheduler owns status changes).
The rules live in ``usecases.rollouts`` and ``usecases.rollout_commands``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from xdp47_api.auth import Principal, require
from xdp47_api.pagination import CursorParam, LimitParam, publish_page
from xdp47_api.routes._responses import errors
from xdp47_api.state import ServicesDep
from xdp47_api.usecases import rollback, rollout_commands, rollouts
from xdp47_common.models import (
    RollbackAnswer,
    RollbackRequest,
    Rollout,
    RolloutCreate,
    RolloutPlan,
    RolloutStartAnswer,
    RunProgress,
    Scope,
)
from xdp47_common.rollout.commands import CommandName
from xdp47_common.rollout.status import RolloutHold, RolloutStatus

__all__ = ["router"]

router = APIRouter(prefix="/api/rollouts", tags=["rollouts"])

Reader = Annotated[Principal, require(Scope.ROLLOUTS_READ)]
Writer = Annotated[Principal, require(Scope.ROLLOUTS_WRITE)]

_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Command published; the scheduler acts on it"}
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
    hold: Annotated[
        RolloutHold | None,
        Query(
            description="Only running rollouts held so: paused, "
            "awaiting_approval, analysis_inconclusive."
        ),
    ] = None,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> list[Rollout]:
    page = await rollouts.list_page(
        services,
        principal.tenant,
        status=status,
        hold=hold,
        limit=limit,
        cursor=cursor,
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
    return await rollouts.create(services, principal, body)


@router.get(
    "/{rollout_id}",
    response_model=Rollout,
    summary="Read a rollout",
    responses=errors(404),
)
async def get_rollout(
    rollout_id: UUID, principal: Reader, services: ServicesDep
) -> Rollout:
    return await rollouts.get(services, principal.tenant, rollout_id)


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
    page = await rollouts.runs(
        services, principal.tenant, rollout_id, limit=limit, cursor=cursor
    )
    return publish_page(request, response, page)


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
    rollout = await rollouts.get(services, principal.tenant, rollout_id)
    return await rollouts.plan(services, rollout, limit=limit)


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
    return await rollout_commands.start(services, principal, rollout_id)


@router.post(
    "/{rollout_id}:rollback",
    response_model=RollbackAnswer,
    status_code=202,
    summary="Roll back: send every device that applied the artifact back",
    description="Creates and starts a rollback rollout (kind `rollback`, "
    "`rollback_of` this rollout, id `rollback_id` in the answer) whose targets "
    "are the devices that applied this rollout's artifact and still run it, each "
    "sent back to the artifact it ran before, in waves under the policy given "
    "(`policy`: id or name) or this rollout's. A running rollout is aborted "
    "first. Accepted for a running, failed, partial or completed rollout that is "
    "not itself a rollback; 409 otherwise, or when no device would go back.",
    responses={**errors(404, 409, 413), **_ACCEPTED},
)
async def rollback_rollout(
    rollout_id: UUID,
    principal: Writer,
    services: ServicesDep,
    body: RollbackRequest | None = None,
) -> RollbackAnswer:
    return await rollback.rollback(services, principal, rollout_id, body)


@dataclass(frozen=True)
class _Steering:
    """The OpenAPI text of a steering command's route."""

    summary: str
    description: str | None = None
    codes: tuple[int, ...] = (404, 409)


# The commands that act on a rollout as it stands (``rollout_commands.send``:
# the core's table of which phases accept each, the scope each needs), one
# route each: ``POST /api/rollouts/{id}:<command>``, answered 202 with the
# rollout.
_STEERING: dict[CommandName, _Steering] = {
    CommandName.RETRY: _Steering("Retry the failed and skipped devices"),
    CommandName.ABORT: _Steering("Abort: devices not yet updated keep their version"),
    CommandName.PAUSE: _Steering(
        "Pause: no new wave starts and no gate judges until resume",
        "The rollout stays `running` with `hold: paused`. Devices already "
        "told to update keep going (their desired state does not change); the "
        "current wave's grace and deadline do not run while paused. Pausing a "
        "paused rollout changes nothing (202); 409 unless running (and neither "
        "awaiting approval nor held by an inconclusive analysis).",
    ),
    CommandName.RESUME: _Steering(
        "Resume a paused rollout, or one held by an inconclusive analysis",
        "The current wave goes on with the grace and deadline it had "
        "left when paused; its gate judges it at once (from `analysis_inconclusive`: "
        "the analysis is judged again on the telemetry gathered meanwhile, and holds "
        "again while a side still has too few devices). Resuming a rollout that is "
        "not held changes nothing (202); 409 when it awaits approval or is not "
        "running.",
    ),
    CommandName.APPROVE: _Steering(
        "Approve the wave that awaits approval (scope rollouts:approve)",
        "Starts wave `current_wave + 1` of a rollout with `hold: "
        "awaiting_approval` (its policy's `approval_before_waves`). Under the "
        "tenant's `four_eyes_approval`, the token that started the rollout "
        "(`started_by`) is refused with 403. 409 when no wave awaits approval.",
        (403, 404, 409),
    ),
    CommandName.PROMOTE: _Steering(
        "Judge the current wave now, skipping the rest of its grace",
        "For a running rollout whose current wave is in its grace "
        "period: its gate judges it at once (passes it when its devices are done, "
        "or as soon as the last one reports). 409 when there is nothing to promote "
        "(no grace left, promoted already, held, or not running).",
    ),
}


def _steering_route(command: CommandName, doc: _Steering) -> None:
    """Register the route of ``command`` (named ``<command>_rollout``, which
    names its OpenAPI operation), guarded by the command's scope."""
    verb = command.value

    async def steer(rollout_id: UUID, principal: Any, services: ServicesDep) -> Rollout:
        return await rollout_commands.send(services, principal, verb, rollout_id)

    # Set here, not in the signature: the scope is the command's, and the
    # module's annotations are strings FastAPI resolves in its globals.
    steer.__annotations__["principal"] = Annotated[
        Principal, require(rollout_commands.COMMAND_SCOPE[verb])
    ]
    steer.__name__ = steer.__qualname__ = f"{verb}_rollout"
    router.post(
        f"/{{rollout_id}}:{verb}",
        response_model=Rollout,
        status_code=202,
        summary=doc.summary,
        description=doc.description,
        responses={**errors(*doc.codes), **_ACCEPTED},
    )(steer)


for _command, _doc in _STEERING.items():
    _steering_route(_command, _doc)
