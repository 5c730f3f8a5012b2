"""The rollout engine: applies the pure core's decisions to PostgreSQL.

Handlers: ``handle_command`` (start / retry / abort), ``evaluate`` (the gates of one
rollout), ``tick`` (the timer: offline marking, every running rollout, reconcile)
and the heartbeat hooks ``after_write`` / ``after_commit``.

Every change of a rollout happens in one transaction that first locks the rollout
row; decisions come from ``xdp47_common.rollout`` (``start``, ``retry``, ``abort``,
``decide``) and are applied in the order ``Decision`` documents. Starting a wave
is a pointer flip (``store.start_wave``): its devices are told by the read-time
definition of the desired state as soon as that transaction commits. Events are
published after the commit.

A wave start leaves work that must not delay the next gate: the **follow-up**
(``follow_up``, one background task per rollout, also scheduled by the timer
when it finds work left, e.g. after a crash) moves the started wave's pending
targets to assigned/skipped in chunks, counts devices that already run the
artifact, asks the gates again, and writes the next wave's targets ahead.
``drain`` waits for the running follow-ups (shutdown, tests, benchmarks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import structlog

from xdp47_common.adapters.planning import (
    Connection,
    count_incompatible,
    count_matched,
    write_plan,
)
from xdp47_common.bus import PoisonMessage
from xdp47_common.clock import utcnow
from xdp47_common.messages import (
    AbortRollout,
    RetryRollout,
    RolloutCommand,
    RolloutEvent,
    StartRollout,
)
from xdp47_common.rollout import (
    TERMINAL_STATUSES,
    Decision,
    EffectivePolicy,
    EventName,
    Exclusion,
    InvalidTransition,
    PlanCount,
    RolloutStatus,
    WaveCounters,
    abort,
    decide,
    offline_cutoff,
    retry,
    start,
)
from xdp47_scheduler import progress, store, story
from xdp47_scheduler.backlog import DrainedProbe, HeardUntil
from xdp47_scheduler.events import EventSink, event_messages
from xdp47_scheduler.heartbeats import HeartbeatWriteResult, mark_offline
from xdp47_scheduler.metrics import (
    COMMAND_LATENCY,
    COMMANDS,
    GATE_DURATION,
    GATE_EVALUATIONS,
    HEARTBEAT_LAG,
    ROLLOUTS,
    WAVE_DURATION,
    WAVES_STARTED,
)
from xdp47_scheduler.reconcile import reconcile

__all__ = ["COMMAND_CONSUMER", "Clock", "RolloutEngine"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Work = Callable[[Connection], Awaitable[list[RolloutEvent]]]
T = TypeVar("T")

COMMAND_CONSUMER = "scheduler.commands"
_INBOX = """
INSERT INTO inbox (consumer, message_id) VALUES ($1, $2)
ON CONFLICT DO NOTHING RETURNING 1
"""
_RUNNING = "SELECT id FROM rollouts WHERE status = 'running' ORDER BY id"
_BY_STATUS = "SELECT status, count(*) AS n FROM rollouts GROUP BY status"

# Targets moved per follow-up transaction: short enough that a heartbeat batch
# touching one of them waits milliseconds, not the whole wave.
_CHUNK = 5000

# Races between schedulers (and with heartbeat batches) that a retry resolves: a
# deadlock, or a device taken by another rollout between our read and our write.
_RETRYABLE = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.UniqueViolationError,
)
_ATTEMPTS = 5


# How often per XDP47_SCHED_OFFLINE_AFTER the timer marks silent devices offline:
# a device is offline between offline_after and offline_after * (1 + 1/6) after
# its last heartbeat.
OFFLINE_CHECKS = 6


class RolloutEngine:
    """Applies commands and gate decisions; one instance per scheduler process."""

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        defaults: EffectivePolicy,
        events: EventSink,
        *,
        clock: Clock = utcnow,
        offline_after: float = 90.0,
        drained: DrainedProbe | None = None,
    ) -> None:
        self._pool = pool
        self._defaults = defaults
        self._events = events
        self._clock = clock
        self._offline_after = timedelta(seconds=offline_after)
        # Marking offline scans the online devices (no index on last_seen, so
        # that a heartbeat's update stays HOT, migration 0009): a few times per
        # offline_after, not on every tick.
        self._offline_every = timedelta(seconds=offline_after / OFFLINE_CHECKS)
        self._next_offline_check: datetime | None = None
        # Offline and wave deadlines are judged from it, never from a clock the
        # heartbeat queue has not caught up with.
        self.heard = HeardUntil(drained)
        self._touched: set[UUID] = set()
        self._follow_due: set[UUID] = set()
        self._followers: dict[UUID, asyncio.Task[None]] = {}

    # -- plumbing -----------------------------------------------------------

    async def _tx(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction, retried on races."""
        for attempt in range(_ATTEMPTS):
            try:
                # Its decisions are told once it commits (a retry tells them once).
                with story.after_commit():
                    async with self._pool.acquire() as conn, conn.transaction():
                        return await work(conn)
            except _RETRYABLE as exc:
                if attempt == _ATTEMPTS - 1:
                    raise
                log.info("retrying after %s", exc.__class__.__name__)
                await asyncio.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    async def _run(self, work: Work) -> None:
        """Run ``work`` in a transaction (retried on races), then publish and
        schedule the follow-up of every wave it started."""
        events = await self._tx(work)
        for e in events:
            if e.event == EventName.WAVE_STARTED.value:
                self._follow(e.rollout_id)
        if events:
            await self._events.publish(events)

    async def _policy(self, conn: Connection, row: store.RolloutRow) -> EffectivePolicy:
        if row.effective_policy is not None:
            return EffectivePolicy.model_validate(row.effective_policy)
        overrides = await store.load_policy_overrides(conn, row.tenant, row.policy_id)
        return EffectivePolicy.resolve(overrides, self._defaults)

    async def _apply(
        self,
        conn: Connection,
        row: store.RolloutRow,
        decision: Decision,
        policy: EffectivePolicy,
        reason: str | None,
        counters: WaveCounters | None = None,
    ) -> list[RolloutEvent]:
        story.decision(row, decision, reason, counters)
        finish = decision.finish_wave
        if finish is not None:
            if row.current_wave_started_at is not None:
                WAVE_DURATION.labels(finish.outcome.value).observe(
                    max(
                        0.0,
                        (self._clock() - row.current_wave_started_at).total_seconds(),
                    )
                )
            await store.finish_run(
                conn, row.id, row.attempt, finish.wave, finish.outcome, finish.reason
            )
        await store.update_rollout(conn, row.id, decision, reason)
        if decision.start_wave is not None:
            started = await store.start_wave(
                conn, row, attempt=decision.attempt, wave=decision.start_wave
            )
            if started is not None:
                WAVES_STARTED.inc()
        if decision.status in TERMINAL_STATUSES:
            await store.release_targets(conn, row.id, decision.status)
        return event_messages(row.tenant, row.id, decision.attempt, decision.events)

    async def _settle(
        self, conn: Connection, rollout_id: UUID, policy: EffectivePolicy
    ) -> list[RolloutEvent]:
        """Decide and apply until the rollout waits; the caller holds the lock."""
        events: list[RolloutEvent] = []
        for _ in range(250):  # bounded: each step starts a wave or ends the loop
            row = await store.lock_rollout(conn, rollout_id)
            if row is None or row.status is not RolloutStatus.RUNNING:
                break
            counters = await store.read_counters(conn, row)
            if row.current_wave is not None and counters is None:
                # A running wave without its run: repair by starting it again.
                log.warning(
                    "rollout %s: run of wave %s missing", row.id, row.current_wave
                )
                await store.start_wave(
                    conn, row, attempt=max(row.attempt, 1), wave=row.current_wave
                )
                self._follow(row.id)
                continue
            state = row.state(shortfall=await store.shortfall(conn, row))
            decision = decide(
                state, counters, policy, self._clock(), self.heard.value()
            )
            if not decision.changed:
                GATE_EVALUATIONS.labels("wait").inc()
                break
            if decision.timed_out_wave is not None:
                GATE_EVALUATIONS.labels("timed_out").inc()
                story.wave_timed_out(row, decision.timed_out_wave, counters)
                await store.time_out_wave(
                    conn, row.id, row.attempt, decision.timed_out_wave
                )
                events += event_messages(
                    row.tenant, row.id, row.attempt, decision.events
                )
                continue
            GATE_EVALUATIONS.labels(
                "advanced" if decision.start_wave else "finished"
            ).inc()
            events += await self._apply(
                conn, row, decision, policy, decision.reason, counters
            )
            if decision.start_wave is None:
                break
        return events

    # -- commands -------------------------------------------------------------

    async def handle_command(self, command: RolloutCommand) -> None:
        """Apply a start, retry or abort command once (inbox + state machine)."""
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

        async def work(conn: Connection) -> list[RolloutEvent]:
            nonlocal outcome, detail
            outcome, detail = "applied", None
            if (
                await conn.fetchval(_INBOX, COMMAND_CONSUMER, command.message_id)
                is None
            ):
                outcome = "duplicate"
                return []
            row = await store.lock_rollout(conn, command.rollout_id)
            if row is None or row.tenant != command.tenant:
                outcome = "unknown_rollout"
                # It can never apply: rolled back (no inbox row, so a redelivery
                # is judged again) and dead-lettered by the consumer, counted.
                raise PoisonMessage("unknown_rollout", str(command.rollout_id))
            try:
                events = await self._command(conn, row, command)
            except InvalidTransition as exc:
                outcome, detail = "rejected", str(exc)
                return []
            if not events:
                outcome = "no_op"
            return events

        def told() -> None:
            # After the commit (or the roll-back of an unknown rollout's
            # command, which the consumer dead-letters).
            COMMANDS.labels(kind, outcome).inc()
            story.command(
                kind, outcome, str(command.rollout_id), command.tenant, detail
            )

        try:
            await self._run(work)
        except PoisonMessage:
            told()
            raise
        told()
        if outcome == "applied":
            latency = (self._clock() - command.occurred_at).total_seconds()
            COMMAND_LATENCY.labels(kind).observe(max(0.0, latency))

    async def _command(
        self, conn: Connection, row: store.RolloutRow, command: RolloutCommand
    ) -> list[RolloutEvent]:
        if isinstance(command, StartRollout):
            if not start(row.state()).changed:
                return []
            policy = await self._policy(conn, row)
            await store.save_policy(conn, row.id, policy)
            target = row.plan_target()
            await write_plan(conn, target)
            # From the stored plan: ``write_plan`` answers zeros for a plan
            # written before.
            planned = await store.planned_total(conn, row.id)
            plan = PlanCount(planned=planned, matched=planned)
            if planned == 0:
                # Zero eligible: say how many the selector matched and why each
                # is out (the planning exclusions left after the selector and
                # channel: incompatible, or another rollout holding the device).
                matched = await count_matched(conn, target)
                incompatible = await count_incompatible(conn, target)
                plan = PlanCount(
                    planned=0,
                    matched=matched,
                    excluded={
                        reason.value: n
                        for reason, n in (
                            (Exclusion.INCOMPATIBLE, incompatible),
                            (Exclusion.IN_ANOTHER_ROLLOUT, matched - incompatible),
                        )
                        if n
                    },
                )
            decision = start(row.state(), plan, policy)
            reason = decision.reason
        elif isinstance(command, RetryRollout):
            decision = retry(row.state())
            if not decision.changed:
                return []
            policy = await self._policy(conn, row)
            _, left_out = await store.reset_for_retry(conn, row.id)
            reason = decision.reason
            if left_out:
                reason = f"{reason}; {left_out} devices left out: in another rollout"
        else:
            assert isinstance(command, AbortRollout)
            decision = abort(
                row.state(), by=command.requested_by or "operator", note=command.reason
            )
            if not decision.changed:
                return []
            policy = await self._policy(conn, row)
            reason = decision.reason
        events = await self._apply(conn, row, decision, policy, reason)
        if decision.start_wave is not None:
            events += await self._settle(conn, row.id, policy)
        return events

    # -- gates ------------------------------------------------------------------

    async def evaluate(self, rollout_id: UUID, *, skip_locked: bool = False) -> None:
        """Evaluate the gates of one running rollout and apply what they decide."""
        structlog.contextvars.unbind_contextvars("message_id", "correlation_id")
        # Bound for this evaluation only: the timer task goes on to other work
        # (the heartbeat queue probe, offline marking) that is no rollout's.
        with structlog.contextvars.bound_contextvars(rollout_id=str(rollout_id)):
            await self._evaluate(rollout_id, skip_locked=skip_locked)

    async def _evaluate(self, rollout_id: UUID, *, skip_locked: bool) -> None:
        async def work(conn: Connection) -> list[RolloutEvent]:
            row = await store.lock_rollout(conn, rollout_id, skip_locked=skip_locked)
            if row is None:
                GATE_EVALUATIONS.labels("skipped_locked").inc()
                return []
            if row.status is not RolloutStatus.RUNNING:
                return []
            return await self._settle(conn, row.id, await self._policy(conn, row))

        with GATE_DURATION.time():
            await self._run(work)

    async def tick(self) -> None:
        """The timer: offline marking, the gates and any follow-up left of every
        running rollout, repair."""
        now = self._clock()
        await self.heard.probe(now)
        heard = self.heard.value()
        cutoff = offline_cutoff(now if heard is None else heard, self._offline_after)
        async with self._pool.acquire() as conn:
            due = self._next_offline_check is None or now >= self._next_offline_check
            if cutoff is not None and due:
                await mark_offline(conn, cutoff)
                self._next_offline_check = now + self._offline_every
            ids = [r["id"] for r in await conn.fetch(_RUNNING)]
        for rollout_id in ids:
            try:
                # Another scheduler evaluating it now has it covered.
                await self.evaluate(rollout_id, skip_locked=True)
                # Wave-start work a crash or a lost task left behind.
                await self._follow_if_due(rollout_id)
            except Exception:
                log.exception("gate evaluation of rollout %s failed", rollout_id)
        await reconcile(self._pool)
        counts = {r["status"]: r["n"] for r in await self._pool.fetch(_BY_STATUS)}
        for status in RolloutStatus:
            ROLLOUTS.labels(status.value).set(counts.get(status.value, 0))

    # -- wave-start follow-up ---------------------------------------------------

    async def follow_up(self, rollout_id: UUID) -> None:
        """The work a wave start leaves, after its commit; idempotent.

        1. The current wave's pending targets become ``assigned`` (or ``skipped``
           offline under skip_offline, moving them from ``eligible`` to
           ``skipped``), ``_CHUNK`` per transaction; devices among them that
           already run the artifact count as applied at once.
        2. The gates are asked again if anything moved (all skipped, all done).
        3. The next wave's targets are written ahead (pending), so its start is
           again only a flip.
        """
        moved_any = False
        while True:

            async def chunk(conn: Connection) -> int:
                moved, told = await store.assign_chunk(conn, rollout_id, _CHUNK)
                await progress.settle_devices(conn, told)
                return moved

            if not await self._tx(chunk):
                break
            moved_any = True
        if moved_any:
            await self.evaluate(rollout_id)
        await self._tx(lambda conn: store.prewrite_next(conn, rollout_id))

    def _follow(self, rollout_id: UUID) -> None:
        """Schedule ``follow_up`` (one task per rollout; a request that arrives
        while it runs makes it run once more)."""
        self._follow_due.add(rollout_id)
        if rollout_id not in self._followers:
            self._followers[rollout_id] = asyncio.create_task(
                self._follow_loop(rollout_id), name=f"follow-up-{rollout_id}"
            )

    async def _follow_loop(self, rollout_id: UUID) -> None:
        try:
            while rollout_id in self._follow_due:
                self._follow_due.discard(rollout_id)
                try:
                    await self.follow_up(rollout_id)
                except Exception:
                    log.exception("follow-up of rollout %s failed", rollout_id)
        finally:
            self._followers.pop(rollout_id, None)

    async def _follow_if_due(self, rollout_id: UUID) -> None:
        if rollout_id in self._followers:
            return
        async with self._pool.acquire() as conn:
            due = await store.follow_up_due(conn, rollout_id)
        if due:
            self._follow(rollout_id)

    async def drain(self) -> None:
        """Wait until no follow-up runs (including ones they schedule)."""
        while self._followers:
            await asyncio.gather(*self._followers.values(), return_exceptions=True)

    # -- heartbeat hooks ----------------------------------------------------------

    async def after_write(self, conn: Connection, result: HeartbeatWriteResult) -> None:
        """In the heartbeat batch's transaction: move the changed devices' targets."""
        now = self._clock()
        for device in result.changed:
            HEARTBEAT_LAG.observe(max(0.0, (now - device.last_seen).total_seconds()))
        # Only devices whose active target is assigned (the write probed it):
        # no other target can move, and most batches have none.
        devices = [(d.tenant, d.device_id) for d in result.changed if d.assigned]
        if devices:
            self._touched |= await progress.settle_devices(conn, devices)

    async def after_commit(self, result: HeartbeatWriteResult) -> None:
        """After the batch committed: advance the watermark to the newest
        heartbeat committed, judge the rollouts whose counters moved."""
        self.heard.committed(result, self._clock())
        touched, self._touched = self._touched, set()
        for rollout_id in sorted(touched):
            try:
                await self.evaluate(rollout_id)
            except Exception:
                log.exception("gate evaluation of rollout %s failed", rollout_id)
