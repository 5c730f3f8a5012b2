"""The scheduler's database port: what the handlers ask of the rollout store.

``RolloutStore`` speaks the scheduler's intents (lock a rollout, read its wave's
counters, apply a decision, start a wave, assign a chunk, claim a command in the
inbox, ...), never SQL. ``xdp47_scheduler.pg`` implements it on PostgreSQL (the
only scheduler modules that import asyncpg); the unit tests drive the engine on an
in-memory implementation.

A change of a rollout happens in one ``transaction()``: its ``RolloutTx`` first
``lock``s the rollout's row, so a rollout changes in one place at a time even with
several schedulers; a transaction that raises leaves no trace (its inbox claim
included, and the events it wrote to the outbox). Counters of a wave's run
change by the moves that cause them, never by recounting a wave.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from xdp47_common.messages import RolloutEvent
from xdp47_common.models.audit import AuditEntry
from xdp47_common.rollout import (
    Decision,
    EffectivePolicy,
    Observations,
    PlanCount,
    RolloutHold,
    RolloutKind,
    RolloutState,
    RolloutStatus,
    WaveCounters,
)
from xdp47_common.selectors import SelectorJson

__all__ = [
    "NOTHING_SETTLED",
    "WINDOWS_PER_ATTEMPT",
    "AnalysedBeat",
    "Outbox",
    "OutboxRow",
    "RolloutRow",
    "RolloutStore",
    "RolloutTx",
    "Send",
    "Settled",
    "SummedSamples",
    "window_wave",
]

# Waves are at most 100 (rollouts.waves CHECK), so ``attempt * 1000 + wave``
# names one window of one rollout: where a device counts once
# (``rollout_targets.analysed_window``; the analysis statement computes it).
WINDOWS_PER_ATTEMPT = 1000


def window_wave(window: int) -> int:
    """The wave of an analysis window (``WINDOWS_PER_ATTEMPT``)."""
    return window % WINDOWS_PER_ATTEMPT


class AnalysedBeat(NamedTuple):
    """One heartbeat of a device in an analysed rollout: the values of the
    metrics its checks read, and the device's target as the heartbeat write
    found it.

    A named tuple: a batch makes one per such device, and the PostgreSQL
    adapter passes them as they are as ``analysed_beat`` rows (migration 0032)."""

    tenant: str
    device_id: str
    rollout_id: UUID
    # The target's state and wave at the write, or as the batch's settling
    # moved it (a target still assigned is never a sample: not sent).
    state: str
    wave: int
    # ``attempt * 1000 + wave`` of the window the device was last counted in.
    analysed_window: int | None
    metrics: list[str]
    values: list[float]


class SummedSamples(NamedTuple):
    """The samples of one (rollout, cohort, metric) from devices already counted
    in the rollout's window ``window``, summed by the scheduler: they add to
    ``samples`` and ``total`` and never to ``devices``. Dropped when ``window``
    is no longer the rollout's current one (their cohort was decided by it)."""

    rollout_id: UUID
    window: int
    cohort: str
    metric: str
    samples: int
    total: float


class Settled(NamedTuple):
    """What settling devices did (``RolloutTx.settle_devices``)."""

    # The running rollouts whose counters moved: their gates are due.
    touched: AbstractSet[UUID]
    # The targets it moved, by (tenant, device): their new state (applied or
    # failed) and their wave.
    moved: Mapping[tuple[str, str], tuple[str, int]]


NOTHING_SETTLED = Settled(frozenset(), MappingProxyType({}))


@dataclass(frozen=True)
class RolloutRow:
    """A rollout as stored, read under its lock."""

    id: UUID
    tenant: str
    artifact_id: UUID
    policy_id: UUID | None
    selector: SelectorJson
    channel: str
    waves: int
    wave_percentages: list[int] | None
    status: RolloutStatus
    current_wave: int | None
    current_wave_started_at: datetime | None
    attempt: int
    effective_policy: dict[str, Any] | None
    kind: RolloutKind = RolloutKind.ROLLOUT
    rollback_of: UUID | None = None
    hold: RolloutHold | None = None
    held_since: datetime | None = None
    grace_skipped: bool = False
    started_by: str | None = None

    def state(self, *, shortfall: bool = False) -> RolloutState:
        return RolloutState(
            id=self.id,
            status=self.status,
            waves=self.waves,
            current_wave=self.current_wave,
            current_wave_started_at=self.current_wave_started_at,
            attempt=self.attempt,
            shortfall=shortfall,
            hold=self.hold,
            held_since=self.held_since,
            grace_skipped=self.grace_skipped,
            started_by=self.started_by,
        )


class RolloutTx(Protocol):
    """One transaction of the store; the methods marked *locked* need ``lock`` first."""

    async def claim(self, consumer: str, message_id: UUID) -> bool:
        """Record ``message_id`` in ``consumer``'s inbox; False if it was before."""
        ...

    async def append_trail(self, entries: Sequence[AuditEntry]) -> None:
        """Append to the audit trail (not the reconcile loop's counter audit),
        committed or rolled back with the rest of this transaction."""
        ...

    async def lock(
        self, rollout_id: UUID, *, skip_locked: bool = False
    ) -> RolloutRow | None:
        """Lock and read a rollout; None if missing (or locked, ``skip_locked``)."""
        ...

    async def policy_overrides(
        self, tenant: str, policy_id: UUID | None
    ) -> dict[str, Any] | None:
        """The policy's fields (None: the default); None without a policy."""
        ...

    async def save_policy(self, rollout_id: UUID, policy: EffectivePolicy) -> None:
        """Keep the effective policy the rollout runs under (at its start)."""
        ...

    async def rollbackable(self, row: RolloutRow) -> int:
        """*Locked.* How many devices a rollback of this rollout would send back:
        its targets ``applied`` whose device still runs its artifact and ran
        another one before (``from``)."""
        ...

    async def create_rollback(
        self, original: RolloutRow, rollback_id: UUID, policy_id: UUID | None
    ) -> RolloutRow | None:
        """*Locked* (the original). Create rollout ``rollback_id`` (kind rollback,
        a draft with the original's artifact, channel and waves) and lock it;
        None when it exists already (the effect holds)."""
        ...

    async def save_starter(self, rollout_id: UUID, started_by: str | None) -> None:
        """Record who started the current attempt (a start or retry command's
        ``requested_by``)."""
        ...

    async def four_eyes(self, tenant: str) -> bool:
        """Whether the tenant requires another token than the starter to approve."""
        ...

    async def write_plan(self, row: RolloutRow) -> PlanCount:
        """*Locked.* Plan the rollout's waves (idempotent) and say what it found."""
        ...

    async def counters(self, row: RolloutRow) -> WaveCounters | None:
        """*Locked.* Counters of the current wave's run; None without one."""
        ...

    async def shortfall(self, row: RolloutRow) -> bool:
        """*Locked.* Whether an earlier wave of this attempt failed or skipped any."""
        ...

    async def apply(
        self, row: RolloutRow, decision: Decision, reason: str | None
    ) -> bool:
        """*Locked.* Apply ``decision`` in ``Decision``'s order: close its finished
        wave's run, store status/attempt/wave/reason and the hold (``hold``,
        ``held_since``, ``shift_wave_clock``, ``skip_grace``), start
        ``start_wave``, and let go of the devices when the status is terminal.

        Returns:
            Whether a wave started (False when it had started before).
        """
        ...

    async def start_wave(self, row: RolloutRow, *, attempt: int, wave: int) -> bool:
        """*Locked.* Start ``wave`` of ``attempt`` exactly once (its run row, its
        ``eligible`` from the targets written ahead); False if it had started."""
        ...

    async def time_out_wave(self, row: RolloutRow, wave: int) -> int:
        """*Locked.* Fail the wave's devices still updating (``timed_out``)."""
        ...

    async def reset_for_retry(self, rollout_id: UUID) -> tuple[int, int]:
        """*Locked.* Plan the targets not applied again: (planned again, left out
        because another rollout holds the device now)."""
        ...

    async def assign_chunk(self, rollout_id: UUID, limit: int) -> int:
        """Wave-start follow-up, without the rollout's lock: move up to ``limit``
        pending targets of the current wave to assigned (or skipped offline) and
        count those whose device already runs the artifact at once.

        Returns:
            How many moved (0: nothing left).
        """
        ...

    async def prewrite_next(self, rollout_id: UUID) -> int | None:
        """Write the next wave's targets ahead of its start, without the
        rollout's lock; None when the rollout has no compact plan."""
        ...

    async def settle_devices(self, devices: Sequence[tuple[str, str]]) -> Settled:
        """Move the targets of these (tenant, device) pairs by what the devices
        report now (applied, failed): the running rollouts whose counters
        moved, and the targets moved."""
        ...

    async def enqueue_events(self, events: Sequence[RolloutEvent]) -> None:
        """Write the events this transaction decided to the outbox: they exist
        exactly when the transaction commits, and the relay publishes them (an
        event whose ``message_id`` is in the outbox already is not added again)."""

    async def analysed_metrics(
        self, rollout_ids: Sequence[UUID]
    ) -> dict[UUID, frozenset[str]]:
        """The metrics each rollout's analysis reads (empty: no analysis); a
        rollout keeps its policy from its start, so the answer never changes."""
        ...

    async def record_samples(
        self,
        beats: Sequence[AnalysedBeat],
        sums: Sequence[SummedSamples],
        rollouts: Sequence[UUID],
    ) -> dict[UUID, int]:
        """Add the heartbeats' values to the running aggregates of their
        devices' rollouts (cohort by the device's target: updated when applied
        in the current wave, baseline when pending in a later wave; else none),
        each device counted once per window; add ``sums`` whose window is still
        their rollout's current one. The current window of each of ``rollouts``
        that is running (a rollout not running is absent)."""
        ...

    async def analysis(self, row: RolloutRow) -> Observations:
        """*Locked.* The aggregates of the current wave of the current attempt."""
        ...

    async def deadline_from(
        self, row: RolloutRow, now: datetime
    ) -> tuple[bool, datetime | None]:
        """*Locked.* For a rollout with maintenance windows: whether a device of
        the current wave still updating waits for its window to open, and the
        latest first opening (since the wave started) among their zones."""
        ...


class RolloutStore(Protocol):
    """The rollout store of one scheduler process."""

    def transaction(self) -> AbstractAsyncContextManager[RolloutTx]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        ...

    def joined(self, handle: object) -> RolloutTx:
        """The port's view of a transaction the caller holds (the heartbeat
        batch's), given as the adapter's own handle."""
        ...

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether a transaction that raised ``exc`` may succeed if run again (a
        race with another scheduler, or the database briefly unavailable)."""
        ...

    async def running(self) -> list[UUID]:
        """The running rollouts, in id order."""
        ...

    async def follow_up_due(self, rollout_id: UUID) -> bool:
        """Whether a running rollout has wave-start work left."""
        ...

    async def count_by_status(self) -> dict[str, int]:
        """How many rollouts are in each status."""
        ...

    async def count_held(self) -> dict[str, int]:
        """How many running rollouts are in each hold (paused, awaiting approval)."""
        ...

    async def mark_offline(self, older_than: datetime) -> int:
        """Mark the devices silent since ``older_than`` offline; how many."""
        ...

    async def refresh_windows(self, now: datetime) -> int:
        """Recompute the maintenance-window states (per rollout and zone) that
        are due at ``now``; how many."""
        ...

    async def join_late(self) -> int:
        """Give the running rollouts' late joiners their targets by each
        rollout's ``late_joiners``; how many joined."""
        ...

    async def reconcile(self) -> dict[str, int]:
        """Repair what a lost message or a crash could leave; rows by kind."""
        ...


@dataclass(frozen=True)
class OutboxRow:
    """An event waiting in the outbox, as it goes on the wire."""

    id: int
    message_id: UUID
    tenant: str
    routing_key: str
    payload: str


Send = Callable[[OutboxRow], Awaitable[None]]


class Outbox(Protocol):
    """The outbox as the relay sees it."""

    async def relay(self, limit: int, send: Send) -> int:
        """In one transaction, take up to ``limit`` unsent rows no other relay
        holds (oldest first), ``send`` each in order and mark those sent; the
        first ``send`` that raises ends the batch (the rows before it are
        marked) and its exception propagates. Returns how many were sent."""
        ...

    async def prune(self, older_than: datetime) -> int:
        """Delete the rows sent before ``older_than``; how many."""
        ...

    async def unsent(self) -> int:
        """How many rows wait to be sent."""
        ...
