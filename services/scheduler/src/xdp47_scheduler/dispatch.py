"""Apply one rollout command exactly once: inbox, lock, handler, apply, advance.

In one transaction: claim the command's ``message_id`` in the inbox (a redelivered
command finds it claimed and changes nothing), lock the rollout, ask the handler
of the command's type (``handlers.HANDLERS``) for its step, apply it and, if it
leaves the rollout running and not held (a wave started, a resume, a
promote), advance it until it waits, then run its follow-up (``Step.then``: a
rollback creates and starts the rollout that undoes it). A crash anywhere before the
commit leaves nothing, the inbox claim included, so the redelivery applies it; a
crash after the commit (before the ack) leaves the claim, so the redelivery is a
duplicate. The events go to the outbox in the same transaction (``runner``).

Every judged command (applied, no-op, rejected, refused) appends its entry to
the audit trail in that transaction, whatever its type (``trail.command_entry``);
a duplicate appends nothing (its first delivery did).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from uuid import UUID

import structlog

from xdp47_common.bus import PoisonMessage
from xdp47_common.messages import RolloutCommand, RolloutEvent
from xdp47_common.models.audit import AuditOutcome
from xdp47_common.rollout import ApprovalRefused, InvalidTransition, RolloutStatus
from xdp47_common.rollout.commands import Phase
from xdp47_scheduler import story
from xdp47_scheduler.advance import Context, advance, apply_decision
from xdp47_scheduler.handlers import HANDLERS
from xdp47_scheduler.metrics import COMMAND_LATENCY, COMMANDS
from xdp47_scheduler.ports import RolloutTx
from xdp47_scheduler.runner import Runner
from xdp47_scheduler.trail import ActingFor, command_entry

__all__ = ["COMMAND_CONSUMER", "handle_command"]

# The inbox's consumer name of rollout commands.
COMMAND_CONSUMER = "scheduler.commands"


async def handle_command(
    runner: Runner,
    ctx: Context,
    command: RolloutCommand,
    restarted: Callable[[UUID], None],
) -> None:
    """Apply a command once (inbox + state machine); count and log its outcome.

    Raises:
        PoisonMessage: The rollout is unknown (or not the command's tenant's):
            nothing is recorded, and the consumer dead-letters the command.
    """
    # Logs of this command carry its ids (the consumer task handles commands
    # one after another, so each binding replaces the previous one).
    structlog.contextvars.bind_contextvars(
        message_id=str(command.message_id),
        correlation_id=command.correlation_id,
        rollout_id=str(command.rollout_id),
        tenant=command.tenant,
    )
    kind = command.type.removeprefix("rollout.")
    outcome = "applied"
    detail: str | None = None
    # The decisions this command causes act for its sender (audit trail).
    ctx = replace(ctx, acting_for=ActingFor.of(command))

    async def work(tx: RolloutTx) -> list[RolloutEvent]:
        nonlocal outcome, detail
        outcome, detail = "applied", None
        if not await tx.claim(COMMAND_CONSUMER, command.message_id):
            outcome = "duplicate"
            return []
        row = await tx.lock(command.rollout_id)
        if row is None or row.tenant != command.tenant:
            outcome = "unknown_rollout"
            # It can never apply: rolled back (no inbox row, so a redelivery is
            # judged again) and dead-lettered by the consumer, counted.
            raise PoisonMessage("unknown_rollout", str(command.rollout_id))
        phase = Phase(row.status, row.hold)
        try:
            step = await HANDLERS[command.type](tx, row, command, ctx)
        except InvalidTransition as exc:
            outcome, detail = "rejected", str(exc)
            rejected = command_entry(
                command, phase, phase, AuditOutcome.REJECTED, detail
            )
            await tx.append_trail([rejected])
            return []
        except ApprovalRefused as exc:
            outcome, detail = "refused", str(exc)
            refused = command_entry(command, phase, phase, AuditOutcome.REFUSED, detail)
            await tx.append_trail([refused])
            return []
        if step is None:
            outcome = "no_op"
            await tx.append_trail(
                [command_entry(command, phase, phase, AuditOutcome.NO_OP)]
            )
            return []
        decision = step.decision
        # The command's own move first; the scheduler's decisions follow it.
        await tx.append_trail(
            [
                command_entry(
                    command,
                    phase,
                    Phase(decision.status, decision.hold),
                    AuditOutcome.APPLIED,
                )
            ]
        )
        events: list[RolloutEvent] = []
        if decision.changed:
            # (A rollback of a finished rollout leaves it as it is: its step
            # only starts the rollback, in ``then``.)
            events = await apply_decision(
                tx, row, decision, step.reason, ctx, occurrence=command.message_id
            )
        if decision.status is RolloutStatus.RUNNING and decision.hold is None:
            # A started wave, a resume or a promote: the gates judge at once.
            events += await advance(tx, row.id, step.policy, ctx, restarted=restarted)
        if step.then is not None:
            events += await step.then(tx, restarted)
        if not events:
            outcome = "no_op"
        return events

    def told() -> None:
        # After the commit (or the roll-back of an unknown rollout's command,
        # which the consumer dead-letters).
        COMMANDS.labels(kind, outcome).inc()
        story.command(kind, outcome, str(command.rollout_id), command.tenant, detail)

    try:
        await runner.run(work)
    except PoisonMessage:
        told()
        raise
    told()
    if outcome == "applied":
        latency = (ctx.clock() - command.occurred_at).total_seconds()
        COMMAND_LATENCY.labels(kind).observe(max(0.0, latency))
