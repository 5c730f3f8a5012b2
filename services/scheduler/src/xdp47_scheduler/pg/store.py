"""``RolloutStore`` on PostgreSQL: the port's intents as the SQL of this package."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import asyncpg

from xdp47_common.adapters.audit_trail import append_audit
from xdp47_common.adapters.pg import DATABASE_UNAVAILABLE
from xdp47_common.adapters.planning import (
    Connection,
    count_incompatible,
    count_matched,
    write_plan,
)
from xdp47_common.messages import RolloutEvent
from xdp47_common.models.audit import AuditEntry
from xdp47_common.rollout import (
    TERMINAL_STATUSES,
    Decision,
    EffectivePolicy,
    Exclusion,
    Observations,
    PlanCount,
    WaveCounters,
)
from xdp47_scheduler.heartbeats import mark_offline
from xdp47_scheduler.pg import (
    analysis,
    ending,
    late,
    outbox,
    progress,
    rollouts,
    waves,
    windows,
)
from xdp47_scheduler.pg.reconcile import Reconciler
from xdp47_scheduler.ports import (
    AnalysedBeat,
    RolloutRow,
    RolloutStore,
    RolloutTx,
    Settled,
    SummedSamples,
)

__all__ = ["PgRolloutStore", "PgRolloutTx"]

_INBOX = """
INSERT INTO inbox (consumer, message_id) VALUES ($1, $2)
ON CONFLICT DO NOTHING RETURNING 1
"""
_RUNNING = "SELECT id FROM rollouts WHERE status = 'running' ORDER BY id"
_BY_STATUS = "SELECT status, count(*) AS n FROM rollouts GROUP BY status"
_HELD = """
SELECT hold, count(*) AS n FROM rollouts
WHERE status = 'running' AND hold IS NOT NULL GROUP BY hold
"""

# Races between schedulers (and with heartbeat batches) that running the
# transaction again resolves: a deadlock, or a device taken by another rollout
# between our read and our write.
_RACES: tuple[type[Exception], ...] = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.UniqueViolationError,
)


class PgRolloutTx(RolloutTx):
    """One transaction on one connection (the caller's, or one of the pool's)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def claim(self, consumer: str, message_id: UUID) -> bool:
        return await self.conn.fetchval(_INBOX, consumer, message_id) is not None

    async def append_trail(self, entries: Sequence[AuditEntry]) -> None:
        # The trail's one INSERT, shared with the API (migration 0020).
        await append_audit(self.conn, entries)

    async def lock(
        self, rollout_id: UUID, *, skip_locked: bool = False
    ) -> RolloutRow | None:
        return await rollouts.lock_rollout(
            self.conn, rollout_id, skip_locked=skip_locked
        )

    async def policy_overrides(
        self, tenant: str, policy_id: UUID | None
    ) -> dict[str, Any] | None:
        return await rollouts.load_policy_overrides(self.conn, tenant, policy_id)

    async def save_policy(self, rollout_id: UUID, policy: EffectivePolicy) -> None:
        await rollouts.save_policy(self.conn, rollout_id, policy)

    async def rollbackable(self, row: RolloutRow) -> int:
        return await rollouts.rollbackable(self.conn, row)

    async def create_rollback(
        self, original: RolloutRow, rollback_id: UUID, policy_id: UUID | None
    ) -> RolloutRow | None:
        return await rollouts.create_rollback(
            self.conn, original, rollback_id, policy_id
        )

    async def save_starter(self, rollout_id: UUID, started_by: str | None) -> None:
        await rollouts.save_starter(self.conn, rollout_id, started_by)

    async def four_eyes(self, tenant: str) -> bool:
        return await rollouts.four_eyes(self.conn, tenant)

    async def write_plan(self, row: RolloutRow) -> PlanCount:
        target = waves.plan_target(row)
        await write_plan(self.conn, target)
        # From the stored plan: ``write_plan`` answers zeros for a plan written
        # before.
        planned = await waves.planned_total(self.conn, row.id)
        if planned:
            return PlanCount(planned=planned, matched=planned)
        # Zero eligible: say how many the selector matched and why each is out
        # (the planning exclusions left after the selector and channel:
        # incompatible, or another rollout holding the device).
        matched = await count_matched(self.conn, target)
        incompatible = await count_incompatible(self.conn, target)
        return PlanCount(
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

    async def counters(self, row: RolloutRow) -> WaveCounters | None:
        return await rollouts.read_counters(self.conn, row)

    async def shortfall(self, row: RolloutRow) -> bool:
        return await rollouts.shortfall(self.conn, row)

    async def apply(
        self, row: RolloutRow, decision: Decision, reason: str | None
    ) -> bool:
        finish = decision.finish_wave
        if finish is not None:
            await rollouts.finish_run(
                self.conn,
                row.id,
                row.attempt,
                finish.wave,
                finish.outcome,
                finish.reason,
            )
        await rollouts.update_rollout(self.conn, row.id, decision, reason)
        started = False
        if decision.start_wave is not None:
            started = await self.start_wave(
                row, attempt=decision.attempt, wave=decision.start_wave
            )
        if decision.status in TERMINAL_STATUSES:
            await ending.release_targets(self.conn, row.id, decision.status)
        return started

    async def start_wave(self, row: RolloutRow, *, attempt: int, wave: int) -> bool:
        started = await waves.start_wave(self.conn, row, attempt=attempt, wave=wave)
        return started is not None

    async def time_out_wave(self, row: RolloutRow, wave: int) -> int:
        return await rollouts.time_out_wave(self.conn, row.id, row.attempt, wave)

    async def reset_for_retry(self, rollout_id: UUID) -> tuple[int, int]:
        return await ending.reset_for_retry(self.conn, rollout_id)

    async def assign_chunk(self, rollout_id: UUID, limit: int) -> int:
        return await waves.assign_chunk(self.conn, rollout_id, limit)

    async def prewrite_next(self, rollout_id: UUID) -> int | None:
        return await waves.prewrite_next(self.conn, rollout_id)

    async def settle_devices(self, devices: Sequence[tuple[str, str]]) -> Settled:
        return await progress.settle_devices(self.conn, devices)

    async def enqueue_events(self, events: Sequence[RolloutEvent]) -> None:
        await outbox.enqueue(self.conn, events)

    async def analysed_metrics(
        self, rollout_ids: Sequence[UUID]
    ) -> dict[UUID, frozenset[str]]:
        return await analysis.analysed_metrics(self.conn, rollout_ids)

    async def record_samples(
        self,
        beats: Sequence[AnalysedBeat],
        sums: Sequence[SummedSamples],
        rollouts: Sequence[UUID],
    ) -> dict[UUID, int]:
        return await analysis.record_samples(self.conn, beats, sums, rollouts)

    async def analysis(self, row: RolloutRow) -> Observations:
        return await analysis.read_observations(self.conn, row)

    async def deadline_from(
        self, row: RolloutRow, now: datetime
    ) -> tuple[bool, datetime | None]:
        if row.current_wave is None or row.current_wave_started_at is None:
            return False, None
        return await windows.deadline_from(
            self.conn, row.id, row.current_wave, row.current_wave_started_at, now
        )


class PgRolloutStore(RolloutStore):
    """The scheduler's rollouts in PostgreSQL, through an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool
        self._reconciler = Reconciler()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[RolloutTx]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield PgRolloutTx(conn)

    def joined(self, handle: object) -> RolloutTx:
        return PgRolloutTx(cast(Connection, handle))

    def is_retryable(self, exc: BaseException) -> bool:
        # A pooled connection the server dropped is replaced on the next acquire.
        return isinstance(exc, (*_RACES, *DATABASE_UNAVAILABLE))

    async def running(self) -> list[UUID]:
        return [r["id"] for r in await self._pool.fetch(_RUNNING)]

    async def follow_up_due(self, rollout_id: UUID) -> bool:
        async with self._pool.acquire() as conn:
            return await waves.follow_up_due(conn, rollout_id)

    async def count_by_status(self) -> dict[str, int]:
        return {r["status"]: r["n"] for r in await self._pool.fetch(_BY_STATUS)}

    async def count_held(self) -> dict[str, int]:
        return {r["hold"]: r["n"] for r in await self._pool.fetch(_HELD)}

    async def mark_offline(self, older_than: datetime) -> int:
        async with self._pool.acquire() as conn:
            return await mark_offline(conn, older_than)

    async def refresh_windows(self, now: datetime) -> int:
        async with self._pool.acquire() as conn:
            return await windows.refresh_windows(conn, now)

    async def join_late(self) -> int:
        async with self._pool.acquire() as conn:
            return await late.join_late(conn)

    async def reconcile(self) -> dict[str, int]:
        return await self._reconciler.run(self._pool)
