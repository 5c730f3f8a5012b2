"""Apply the core's decisions to a locked rollout, and advance it until it waits.

``apply_decision`` applies one ``Decision`` (``RolloutTx.apply``) with its metrics
and log line; ``advance`` asks the gates (``xdp47_common.rollout.decide``) and
applies what they decide, again, until the rollout waits or ends: a wave that
passes at once (all its devices skipped, or nothing to retry) starts the next in
the same transaction. A rollout that ends ``failed`` under ``on_failure:
rollback`` starts its rollback there too (``start_rollback``), so the failure
and the rollback commit together, once. All run inside the caller's
transaction, which holds the rollout's lock, and append each decision to the
audit trail there (``trail.decision_entries``). Used by the command handlers
and the gate evaluation.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from xdp47_common import tracing
from xdp47_common.messages import RolloutEvent
from xdp47_common.rollout import (
    Decision,
    EffectivePolicy,
    RolloutStatus,
    WaveCounters,
    automatic_rollback_id,
    deadline_passed,
    decide,
    rollback_on_failure,
    start,
)
from xdp47_scheduler import story
from xdp47_scheduler.backlog import HeardUntil
from xdp47_scheduler.events import event_messages
from xdp47_scheduler.metrics import GATE_EVALUATIONS, WAVE_DURATION, WAVES_STARTED
from xdp47_scheduler.ports import RolloutRow, RolloutTx
from xdp47_scheduler.trail import ActingFor, decision_entries, scheduler_entry

__all__ = [
    "Clock",
    "Context",
    "advance",
    "apply_decision",
    "policy_of",
    "start_rollback",
]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Each step starts a wave or ends the loop; the bound only guards against a bug.
_MAX_STEPS = 250


@dataclass(frozen=True)
class Context:
    """What handlers need besides the transaction: the scheduler defaults, the
    clock, the heard-until watermark (wave deadlines are judged from it) and,
    while a command is applied, whom its decisions act for (the audit trail)."""

    defaults: EffectivePolicy
    clock: Clock
    heard: HeardUntil
    acting_for: ActingFor | None = None


async def policy_of(tx: RolloutTx, row: RolloutRow, ctx: Context) -> EffectivePolicy:
    """The policy the rollout runs under: kept at its start, else resolved now."""
    if row.effective_policy is not None:
        return EffectivePolicy.model_validate(row.effective_policy)
    overrides = await tx.policy_overrides(row.tenant, row.policy_id)
    return EffectivePolicy.resolve(overrides, ctx.defaults)


async def apply_decision(
    tx: RolloutTx,
    row: RolloutRow,
    decision: Decision,
    reason: str | None,
    ctx: Context,
    counters: WaveCounters | None = None,
    occurrence: UUID | None = None,
) -> list[RolloutEvent]:
    """Apply ``decision`` to the locked ``row``; the events it decided (the
    runner writes them to the outbox in the same transaction).

    ``occurrence`` (the command's message id) tells apart events that may happen
    more than once in one wave (paused, resumed)."""
    story.decision(row, decision, reason, counters)
    finish = decision.finish_wave
    if finish is not None and row.current_wave_started_at is not None:
        took = (ctx.clock() - row.current_wave_started_at).total_seconds()
        WAVE_DURATION.labels(finish.outcome.value).observe(max(0.0, took))
    if decision.start_wave is None:
        await tx.apply(row, decision, reason)
    else:
        attributes = {
            "xdp47.rollout_id": str(row.id),
            "xdp47.wave": decision.start_wave,
        }
        with tracing.span("wave start", attributes):  # null when tracing is off
            if await tx.apply(row, decision, reason):
                WAVES_STARTED.inc()
    await tx.append_trail(decision_entries(row, decision, ctx.acting_for))
    return event_messages(
        row.tenant,
        row.id,
        decision.attempt,
        decision.events,
        # A hold the gates decide (no command) is told apart by its start.
        occurrence
        or (decision.held_since.isoformat() if decision.held_since else None),
    )


async def advance(
    tx: RolloutTx,
    rollout_id: UUID,
    policy: EffectivePolicy,
    ctx: Context,
    *,
    restarted: Callable[[UUID], None],
) -> list[RolloutEvent]:
    """Decide and apply until the rollout waits; the caller holds the lock.

    ``restarted`` is told of a wave started again to repair a missing run (its
    follow-up is due; a wave started by a decision announces itself by its event).
    """
    events: list[RolloutEvent] = []
    for _ in range(_MAX_STEPS):
        row = await tx.lock(rollout_id)
        if row is None or row.status is not RolloutStatus.RUNNING:
            break
        if row.hold is not None:
            # Paused or awaiting approval: no gate judges, no wave starts (not
            # even the repair of a missing run below).
            break
        counters = await tx.counters(row)
        if row.current_wave is not None and counters is None:
            # A running wave without its run: repair by starting it again.
            log.warning("rollout %s: run of wave %s missing", row.id, row.current_wave)
            await tx.start_wave(row, attempt=max(row.attempt, 1), wave=row.current_wave)
            restarted(row.id)
            continue
        state = row.state(shortfall=await tx.shortfall(row))
        # The analysis of a wave is read only when its policy has one and the
        # wave has a later one (the last wave leaves no baseline).
        analysed = (
            policy.analysis is not None
            and row.current_wave is not None
            and row.current_wave < row.waves
        )
        now = ctx.clock()
        waiting, opened = False, None
        # Windows can only delay a deadline: ask for the zones' openings only
        # once the wave's own deadline has passed.
        if (
            policy.maintenance_windows
            and counters is not None
            and counters.pending
            and row.current_wave_started_at is not None
            and deadline_passed(row.current_wave_started_at, now, policy)
        ):
            waiting, opened = await tx.deadline_from(row, now)
        decision = decide(
            state,
            counters,
            policy,
            now,
            ctx.heard.value(),
            analysis=await tx.analysis(row) if analysed else None,
            window_waiting=waiting,
            window_opened=opened,
        )
        if not decision.changed:
            GATE_EVALUATIONS.labels("wait").inc()
            break
        if decision.timed_out_wave is not None:
            GATE_EVALUATIONS.labels("timed_out").inc()
            story.wave_timed_out(row, decision.timed_out_wave, counters)
            await tx.time_out_wave(row, decision.timed_out_wave)
            await tx.append_trail(decision_entries(row, decision, ctx.acting_for))
            events += event_messages(row.tenant, row.id, row.attempt, decision.events)
            continue
        GATE_EVALUATIONS.labels(
            "advanced"
            if decision.start_wave
            else "finished"
            if decision.finish_wave or decision.status is not RolloutStatus.RUNNING
            else "held"
        ).inc()
        events += await apply_decision(
            tx, row, decision, decision.reason, ctx, counters
        )
        if rollback_on_failure(row.kind, decision.status, policy):
            ended = await tx.lock(row.id)
            if ended is not None and await tx.rollbackable(ended) > 0:
                rid = automatic_rollback_id(row.id, decision.attempt)
                events += await start_rollback(
                    tx, ended, rid, None, ctx, restarted=restarted
                )
        if decision.start_wave is None:
            break
    return events


_ROLLBACK_EVENT_NS = uuid.UUID("0b6f3f5e-2c59-4d7e-9a43-7a1f0c1e9d22")


async def start_rollback(
    tx: RolloutTx,
    original: RolloutRow,
    rollback_id: UUID,
    policy_id: UUID | None,
    ctx: Context,
    *,
    restarted: Callable[[UUID], None],
) -> list[RolloutEvent]:
    """Create rollback ``rollback_id`` of the locked, no longer running
    ``original`` and start it like a start command (plan, policy, wave 1), then
    advance it; nothing when it exists already. The undone rollout gets a
    ``rollback_started`` event naming it."""
    row = await tx.create_rollback(original, rollback_id, policy_id)
    if row is None:
        return []
    policy = await policy_of(tx, row, ctx)
    await tx.save_policy(row.id, policy)
    # Started by the command's sender (an approval under four-eyes needs another
    # token); by the scheduler itself under ``on_failure: rollback``.
    await tx.save_starter(row.id, ctx.acting_for.actor if ctx.acting_for else None)
    decision = start(row.state(), await tx.write_plan(row), policy)
    told = RolloutEvent(
        message_id=uuid.uuid5(_ROLLBACK_EVENT_NS, str(rollback_id)),
        tenant=original.tenant,
        rollout_id=original.id,
        event="rollback_started",
        status=original.status.value,
        reason=f"rollback {rollback_id}",
        data={"attempt": original.attempt, "rollback_id": str(rollback_id)},
    )
    await tx.append_trail(
        [
            scheduler_entry(
                original,
                f"rollout.{told.event}",
                {"attempt": original.attempt, "rollback_id": str(rollback_id)},
                ctx.acting_for,
            )
        ]
    )
    events = [told]
    events += await apply_decision(tx, row, decision, decision.reason, ctx)
    if decision.start_wave is not None:
        events += await advance(tx, row.id, policy, ctx, restarted=restarted)
    return events
