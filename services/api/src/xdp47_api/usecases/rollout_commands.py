"""Rollout commands: check the rollout's phase, then publish start, retry, abort,
pause, resume, approve or promote for the scheduler (which owns every change),
and record each request in the audit trail, refused ones too.

``COMMAND_FROM`` is the core's table of which phases (status and hold) accept
each command (``xdp47_common.rollout.commands``): a move, or a harmless repeat
whose effect already holds (start or retry of a running rollout, abort of an
aborted one, pause of a paused one, resume of one not held); 409 outside it.
Promote also needs the current wave in its grace (409 otherwise), and approve
under the tenant's four-eyes setting a token other than the one that started
the attempt (403). The scheduler checks both again when it applies the command.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import HTTPException

from xdp47_api.acting import audit_entry
from xdp47_api.auth import Principal
from xdp47_api.repositories.rollouts import SteeringFacts
from xdp47_api.state import Services
from xdp47_api.usecases.errors import conflict
from xdp47_api.usecases.rollouts import get, plan
from xdp47_common.bus import PublishFailed
from xdp47_common.clock import utcnow
from xdp47_common.logging import REQUEST_ID
from xdp47_common.messages import (
    AbortRollout,
    ApproveRollout,
    PauseRollout,
    PromoteRollout,
    ResumeRollout,
    RetryRollout,
    RolloutCommand,
    StartRollout,
)
from xdp47_common.models import Rollout, RolloutStartAnswer, Scope
from xdp47_common.models.audit import AuditOutcome
from xdp47_common.rollout import RolloutState, promotable
from xdp47_common.rollout.commands import (
    CommandName,
    Phase,
    accepted_from,
    offered_table,
)
from xdp47_common.rollout.exclusions import Exclusion
from xdp47_common.rollout.status import RolloutStatus
from xdp47_common.web import ServiceUnavailable

__all__ = [
    "COMMANDS",
    "COMMAND_FROM",
    "COMMAND_SCOPE",
    "accepted_statuses",
    "record_request",
    "send",
    "start",
    "why_not_promote",
]

Command = (
    type[StartRollout]
    | type[RetryRollout]
    | type[AbortRollout]
    | type[PauseRollout]
    | type[ResumeRollout]
    | type[ApproveRollout]
    | type[PromoteRollout]
)

COMMAND_FROM: dict[str, frozenset[Phase]] = {
    c.value: accepted_from(c) for c in CommandName
}

COMMANDS: dict[str, Command] = {
    "start": StartRollout,
    "retry": RetryRollout,
    "abort": AbortRollout,
    "pause": PauseRollout,
    "resume": ResumeRollout,
    "approve": ApproveRollout,
    "promote": PromoteRollout,
}

# The scope each command needs: approving is a separate duty from operating.
COMMAND_SCOPE: dict[str, Scope] = {
    verb: Scope.ROLLOUTS_APPROVE if verb == "approve" else Scope.ROLLOUTS_WRITE
    for verb in COMMANDS
}

FOUR_EYES_REFUSAL = (
    "four-eyes approval: this tenant requires the approval to come from another "
    "token than the one that started the rollout ({starter})"
)


def accepted_statuses() -> dict[str, frozenset[str]]:
    """The phases (``Phase.key``: ``running``, ``running:paused`` ...) in which
    the UI offers each command's button (the core's table without the harmless
    repeats)."""
    return offered_table()


# Reasons that say a device is not one the selector meant: not counted as
# "excluded" in a start's answer (every other device of the tenant has one).
_NOT_MATCHED = frozenset({Exclusion.WRONG_CHANNEL, Exclusion.LABEL_MISMATCH})


async def send(
    services: Services, principal: Principal, verb: str, rollout_id: UUID
) -> Rollout:
    """Publish the ``verb`` command for the caller's rollout, and record the
    request in the audit trail whatever its answer (``rollout.<verb>.requested``:
    accepted, refused with 404/409, or failed with 503). The scheduler records
    what the command did when it applies it (``rollout.<verb>``).

    Raises ``HTTPException`` 404 (no such rollout), 409 (its phase does not
    accept ``verb``, or nothing to promote), 403 (a four-eyes approval by the
    starter), ``ServiceUnavailable`` when the broker refuses.
    """
    action = f"rollout.{verb}.requested"
    try:
        rollout = await get(services, principal.tenant, rollout_id)
    except HTTPException as exc:
        await record_request(services, principal, action, rollout_id, None, exc)
        raise
    phase = Phase(rollout.status, rollout.hold)
    allowed = COMMAND_FROM[verb]
    try:
        if phase not in allowed:
            raise conflict(
                f"cannot {verb} a rollout in status '{phase.describe()}'; "
                f"{verb} needs status "
                f"{' or '.join(sorted(p.describe() for p in allowed))}"
            )
        if verb in ("approve", "promote"):
            await _check_steering(services, principal, verb, rollout)
    except HTTPException as refused:
        await record_request(services, principal, action, rollout_id, rollout, refused)
        raise
    message = COMMANDS[verb](
        tenant=principal.tenant,
        rollout_id=rollout.id,
        requested_by=principal.actor,
        actor_name=principal.display_name,
        request_id=REQUEST_ID.get(),
    )
    await publish_command(services, principal, verb, rollout, message)
    return rollout


async def publish_command(
    services: Services,
    principal: Principal,
    verb: str,
    rollout: Rollout,
    message: RolloutCommand,
    **detail: Any,
) -> None:
    """Publish a checked command and record the request (accepted, or failed
    with 503 when the broker refuses: ``ServiceUnavailable`` is raised)."""
    action = f"rollout.{verb}.requested"
    try:
        await services.bus.publish(
            services.topology.commands,
            services.topology.command_key(message.type),
            message,
        )
    except PublishFailed as exc:
        unavailable = ServiceUnavailable(
            f"the message broker did not accept the {verb} command; retry later"
        )
        await record_request(
            services, principal, action, rollout.id, rollout, unavailable
        )
        raise unavailable from exc
    await record_request(
        services,
        principal,
        action,
        rollout.id,
        rollout,
        None,
        message_id=str(message.message_id),
        **detail,
    )


async def record_request(
    services: Services,
    principal: Principal,
    action: str,
    rollout_id: UUID,
    rollout: Rollout | None,
    refused: Exception | None,
    **detail: Any,
) -> None:
    """The request's entry: it changed nothing itself (the scheduler's entry
    of the command says what it did), so it has a transaction of its own."""
    if isinstance(refused, HTTPException):
        outcome = AuditOutcome.REFUSED
        detail.update(status=refused.status_code, detail=refused.detail)
    elif refused is not None:
        outcome = AuditOutcome.FAILED
        detail.update(status=503, detail=str(refused))
    else:
        outcome = AuditOutcome.ACCEPTED
    # The phase in words: ``running (paused)`` says more than the status.
    status = None if rollout is None else Phase(rollout.status, rollout.hold).describe()
    await services.repos.audit.append(
        audit_entry(
            principal.tenant,
            action,
            "rollout",
            rollout_id,
            outcome=outcome,
            before=status,
            after=status,
            rollout_id=None if rollout is None else rollout.id,
            detail=detail,
        )
    )


async def _check_steering(
    services: Services, principal: Principal, verb: str, rollout: Rollout
) -> None:
    """The checks of approve (four-eyes) and promote (a grace to skip)."""
    facts = await services.repos.rollouts.steering_facts(rollout.tenant, rollout.id)
    if facts is None:  # deleted meanwhile: cannot happen, rollouts are kept
        raise conflict(f"rollout '{rollout.id}' changed; read it again")
    if verb == "approve":
        if facts.four_eyes and principal.actor == rollout.started_by:
            raise HTTPException(
                status_code=403,
                detail=FOUR_EYES_REFUSAL.format(starter=principal.display_name),
            )
        return
    why_not = _why_not_promote(rollout, facts)
    if why_not is not None:
        raise conflict(f"nothing to promote: {why_not}")


async def why_not_promote(services: Services, rollout: Rollout) -> str | None:
    """Why a promote of ``rollout`` would be refused now; None when it applies
    (the UI offers Promote only then)."""
    facts = await services.repos.rollouts.steering_facts(rollout.tenant, rollout.id)
    if facts is None:
        return f"rollout '{rollout.id}' not found"
    return _why_not_promote(rollout, facts)


def _why_not_promote(rollout: Rollout, facts: SteeringFacts) -> str | None:
    state = RolloutState(
        id=rollout.id,
        status=rollout.status,
        waves=rollout.waves,
        current_wave=rollout.current_wave,
        current_wave_started_at=facts.current_wave_started_at,
        attempt=rollout.attempt,
        hold=rollout.hold,
        held_since=rollout.held_since,
        grace_skipped=facts.grace_skipped,
    )
    if facts.policy is None:
        return "the rollout has no policy kept yet"
    return promotable(state, facts.policy, utcnow())


async def start(
    services: Services, principal: Principal, rollout_id: UUID
) -> RolloutStartAnswer:
    """Send start; a draft's answer says what its plan looks like now."""
    rollout = await send(services, principal, "start", rollout_id)
    if rollout.status is not RolloutStatus.DRAFT:
        return RolloutStartAnswer(**rollout.model_dump())
    return await _start_answer(services, rollout)


async def _start_answer(services: Services, rollout: Rollout) -> RolloutStartAnswer:
    """The plan the scheduler would make now: planned devices, and the matched
    ones left out by reason, with a warning for each."""
    found = await plan(services, rollout, limit=1)
    excluded = {
        reason.value: n
        for reason, n in sorted(found.excluded_counts.items())
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
    if found.total == 0:
        warnings.append(
            "no eligible devices: the rollout ends at once without updating any "
            "device (aborted, or completed under abort_on_zero_eligible: false)"
        )
    return RolloutStartAnswer(
        **rollout.model_dump(),
        planned=found.total,
        excluded=excluded,
        warnings=warnings,
    )
