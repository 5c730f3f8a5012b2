"""``RolloutStore`` in memory: the scheduler's port for unit tests, no PostgreSQL.

It keeps the semantics the engine relies on (what ``xdp47_scheduler.pg`` does in
SQL), simplified where the engine cannot tell: the whole plan is written at the
start (the SQL writes each wave ahead of it), and there is no desired state. A
rollback's targets are the undone rollout's applied targets whose device still
runs its artifact, each carrying the artifact it ran before (``from_artifact``).
A transaction works on a copy and replaces the state only when it ends without
an exception, so an exception (``crash_at``) anywhere in it leaves no trace.

Maintenance windows are kept as the SQL keeps them, per (rollout, zone), but
only for the zones the fleet's devices name (the SQL keeps every IANA zone):
``refresh_windows`` writes each zone's first opening since the current wave's
start, and ``deadline_from`` reads the rows of the wave's devices still
updating (a row computed for another wave start reads as not opened yet). Late
joiners (``join_late``) follow ``late_joiners`` as the SQL does, with the whole
plan written at the start: ``last_wave`` joins the last wave at once.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from tests.unit.scheduler.memory_analysis import MemoryAnalysis
from tests.unit.scheduler.memory_outbox import append_events
from tests.unit.scheduler.memory_state import Device, Rollout, Run, State, Target
from tests.unit.scheduler.memory_state import row as rollout_row
from xdp47_common.messages import RolloutEvent
from xdp47_common.models.audit import AuditEntry
from xdp47_common.rollout import (
    TERMINAL_STATUSES,
    Decision,
    EffectivePolicy,
    Exclusion,
    PlanCount,
    RolloutKind,
    RolloutStatus,
    WaveCounters,
    plan_waves,
)
from xdp47_common.rollout.windows import first_open_at, parse_windows, resolve_zone
from xdp47_scheduler.ports import RolloutRow, RolloutStore, RolloutTx, Settled

__all__ = [
    "Crash",
    "Device",
    "MemoryRolloutStore",
    "MemoryTx",
    "Race",
    "Rollout",
    "Run",
    "State",
    "Target",
]


class Crash(Exception):
    """The process died here (injected by ``crash_at``)."""


class Race(Exception):
    """A conflict with another scheduler: running the transaction again helps."""


class MemoryRolloutStore(RolloutStore):
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.state = State()
        self.clock = clock
        # Raise ``Crash`` (or the exception given) at the next call of this
        # ``RolloutTx`` method, once.
        self.crash_at: str | None = None
        self.crash_with: type[Exception] = Crash
        self.transactions = 0

    def fail(self, method: str) -> None:
        if self.crash_at == method:
            self.crash_at = None
            raise self.crash_with(f"crash at {method}")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[RolloutTx]:
        self.transactions += 1
        work = copy.deepcopy(self.state)
        yield MemoryTx(self, work)
        self.state = work  # only reached without an exception: the commit

    def joined(self, handle: object) -> RolloutTx:
        return MemoryTx(self, self.state)

    def is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, Race)

    async def running(self) -> list[UUID]:
        return sorted(
            r.id
            for r in self.state.rollouts.values()
            if r.status is RolloutStatus.RUNNING
        )

    async def follow_up_due(self, rollout_id: UUID) -> bool:
        r = self.state.rollouts[rollout_id]
        return r.status is RolloutStatus.RUNNING and any(
            t.wave == r.current_wave and t.state == "pending" and t.active
            for (rid, _), t in self.state.targets.items()
            if rid == rollout_id
        )

    async def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.state.rollouts.values():
            counts[r.status.value] = counts.get(r.status.value, 0) + 1
        return counts

    async def count_held(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.state.rollouts.values():
            if r.status is RolloutStatus.RUNNING and r.hold is not None:
                counts[r.hold.value] = counts.get(r.hold.value, 0) + 1
        return counts

    async def mark_offline(self, older_than: datetime) -> int:
        silent = [
            d
            for d in self.state.devices.values()
            if d.online and d.last_seen is not None and d.last_seen < older_than
        ]
        for d in silent:
            d.online = False
        return len(silent)

    async def reconcile(self) -> dict[str, int]:
        return {"stale_desired": 0, "counters": 0}

    def _zone(self, device: Device) -> str:
        return device.timezone or ""

    async def refresh_windows(self, now: datetime) -> int:
        written = 0
        for r in self.state.rollouts.values():
            texts = (r.effective_policy or {}).get("maintenance_windows") or ()
            if r.status is not RolloutStatus.RUNNING or not texts:
                continue
            windows = parse_windows(texts)
            default = self.state.default_zones.get(r.tenant)
            started = r.current_wave_started_at
            zones = {
                self._zone(d)
                for d in self.state.devices.values()
                if d.tenant == r.tenant
            }
            for key in sorted(zones | {""}):
                kept = self.state.windows.get((r.id, key))
                if kept is not None and kept[0] == started:
                    continue  # not due: the first opening since a start holds
                zone = resolve_zone(key or None, default)
                opened = (
                    None if started is None else first_open_at(windows, zone, started)
                )
                self.state.windows[(r.id, key)] = (started, opened)
                written += 1
        return written

    async def join_late(self) -> int:
        joined = 0
        for r in self.state.rollouts.values():
            how = (r.effective_policy or {}).get("late_joiners")
            if (
                r.status is not RolloutStatus.RUNNING
                or r.hold is not None
                or r.kind is RolloutKind.ROLLBACK
                or r.current_wave is None
                or how not in ("current_wave", "last_wave")
            ):
                continue
            wave = r.current_wave if how == "current_wave" else r.waves
            skip = (r.effective_policy or {}).get("skip_offline", True)
            tx = MemoryTx(self, self.state)
            for d in self.state.devices.values():
                if (
                    d.tenant != r.tenant
                    or d.channel != r.channel
                    or not r.selector.items() <= d.labels.items()
                    or (r.id, d.id) in self.state.targets
                    or (skip and not d.online)
                    or tx._held_elsewhere(r.id, d.tenant, d.id)
                ):
                    continue
                self.state.targets[(r.id, d.id)] = Target(
                    r.tenant, wave, from_artifact=d.artifact, late=True
                )
                run = self.state.runs.get((r.id, max(r.attempt, 1), wave))
                if run is not None:  # the wave runs: its count grows
                    run.eligible += 1
                joined += 1
        return joined


def _target_artifact(r: Rollout, t: Target) -> UUID:
    return t.artifact if t.artifact is not None else r.artifact_id


class MemoryTx(MemoryAnalysis, RolloutTx):
    def __init__(self, store: MemoryRolloutStore, state: State) -> None:
        self._store = store
        self.s = state

    async def deadline_from(
        self, row: RolloutRow, now: datetime
    ) -> tuple[bool, datetime | None]:
        if row.current_wave is None or row.current_wave_started_at is None:
            return False, None
        opened: list[datetime | None] = []
        for d, t in self._targets(row.id):
            if t.wave != row.current_wave or not t.active:
                continue
            if t.state not in ("pending", "assigned"):
                continue
            device = self.s.devices[(t.tenant, d)]
            kept = self.s.windows.get((row.id, self._store._zone(device)))
            fresh = kept is not None and kept[0] == row.current_wave_started_at
            opened.append(kept[1] if fresh and kept is not None else None)
        if not opened:
            return False, None
        known = [at for at in opened if at is not None]
        waiting = len(known) < len(opened) or any(at > now for at in known)
        return waiting, max(known, default=None)

    def _targets(self, rollout_id: UUID) -> list[tuple[str, Target]]:
        return [(d, t) for (r, d), t in self.s.targets.items() if r == rollout_id]

    def _held_elsewhere(self, rollout_id: UUID, tenant: str, device: str) -> bool:
        return any(
            t.active and r != rollout_id and t.tenant == tenant
            for (r, d), t in self.s.targets.items()
            if d == device
        )

    async def claim(self, consumer: str, message_id: UUID) -> bool:
        self._store.fail("claim")
        if (consumer, message_id) in self.s.inbox:
            return False
        self.s.inbox.add((consumer, message_id))
        return True

    async def append_trail(self, entries: Sequence[AuditEntry]) -> None:
        self._store.fail("append_trail")
        self.s.trail.extend(entries)

    async def lock(
        self, rollout_id: UUID, *, skip_locked: bool = False
    ) -> RolloutRow | None:
        self._store.fail("lock")
        r = self.s.rollouts.get(rollout_id)
        return None if r is None else rollout_row(r)

    async def policy_overrides(
        self, tenant: str, policy_id: UUID | None
    ) -> dict[str, Any] | None:
        return None if policy_id is None else self.s.policies.get((tenant, policy_id))

    async def save_policy(self, rollout_id: UUID, policy: EffectivePolicy) -> None:
        self.s.rollouts[rollout_id].effective_policy = policy.model_dump()

    def _rollback_sources(self, original: UUID, artifact: UUID) -> dict[str, UUID]:
        """Device -> the artifact it goes back to, for a rollback of ``original``."""
        out: dict[str, UUID] = {}
        for (rid, d), t in self.s.targets.items():
            device = self.s.devices[(t.tenant, d)]
            if (
                rid == original
                and t.from_artifact is not None
                and device.artifact == artifact
                and t.from_artifact != artifact
            ):
                out[d] = t.from_artifact
        return out

    async def rollbackable(self, row: RolloutRow) -> int:
        return len(self._rollback_sources(row.id, row.artifact_id))

    async def create_rollback(
        self, original: RolloutRow, rollback_id: UUID, policy_id: UUID | None
    ) -> RolloutRow | None:
        if rollback_id in self.s.rollouts:
            return None
        o = self.s.rollouts[original.id]
        self.s.rollouts[rollback_id] = Rollout(
            rollback_id,
            o.tenant,
            o.artifact_id,
            o.waves,
            channel=o.channel,
            policy_id=policy_id or o.policy_id,
            wave_percentages=o.wave_percentages,
            kind=RolloutKind.ROLLBACK,
            rollback_of=o.id,
            name=f"rollback of {o.name or o.id}",
        )
        return rollout_row(self.s.rollouts[rollback_id])

    async def save_starter(self, rollout_id: UUID, started_by: str | None) -> None:
        self.s.rollouts[rollout_id].started_by = started_by

    async def four_eyes(self, tenant: str) -> bool:
        return tenant in self.s.four_eyes

    async def write_plan(self, row: RolloutRow) -> PlanCount:
        self._store.fail("write_plan")
        r = self.s.rollouts[row.id]
        back: dict[str, UUID] | None = None
        if r.rollback_of is not None:
            back = self._rollback_sources(r.rollback_of, r.artifact_id)
        matched = [
            d
            for d in self.s.devices.values()
            if d.tenant == r.tenant
            and d.channel == r.channel
            and r.selector.items() <= d.labels.items()
            and (back is None or d.id in back)
        ]
        if r.planned is None:
            ids = [
                d.id for d in matched if not self._held_elsewhere(r.id, d.tenant, d.id)
            ]
            plan = plan_waves(r.id, ids, r.waves, r.wave_percentages)
            for wave, devices in enumerate(plan, start=1):
                for device in devices:
                    self.s.targets[(r.id, device)] = Target(
                        r.tenant,
                        wave,
                        from_artifact=self.s.devices[(r.tenant, device)].artifact,
                        artifact=back[device] if back is not None else None,
                    )
            r.planned = len(ids)
        if r.planned:
            return PlanCount(planned=r.planned, matched=r.planned)
        return PlanCount(
            planned=0,
            matched=len(matched),
            excluded={Exclusion.IN_ANOTHER_ROLLOUT.value: len(matched)},
        )

    async def counters(self, row: RolloutRow) -> WaveCounters | None:
        if row.current_wave is None:
            return None
        run = self.s.runs.get((row.id, row.attempt, row.current_wave))
        if run is None:
            return None
        prior = 0
        if row.attempt > 1:
            prior = self.s.prior.get((row.id, row.current_wave), 0)
        return WaveCounters.from_run(
            run.eligible, run.succeeded, run.failed, run.skipped, prior
        )

    async def shortfall(self, row: RolloutRow) -> bool:
        if row.current_wave is None or row.attempt < 1:
            return False
        return any(
            (run.failed or run.skipped)
            for (rid, attempt, wave), run in self.s.runs.items()
            if rid == row.id and attempt == row.attempt and wave < row.current_wave
        )

    async def apply(
        self, row: RolloutRow, decision: Decision, reason: str | None
    ) -> bool:
        self._store.fail("apply")
        finish = decision.finish_wave
        if finish is not None:
            run = self.s.runs.get((row.id, row.attempt, finish.wave))
            if run is not None and run.outcome is None:
                run.outcome, run.reason = finish.outcome.value, finish.reason
        r = self.s.rollouts[row.id]
        r.status, r.attempt = decision.status, decision.attempt
        r.current_wave, r.reason = decision.current_wave, reason
        terminal = decision.status in TERMINAL_STATUSES
        r.hold = None if terminal else decision.hold
        r.held_since = None if terminal or r.hold is None else decision.held_since
        r.grace_skipped = decision.skip_grace and not terminal
        if decision.shift_wave_clock and r.current_wave_started_at is not None:
            r.current_wave_started_at += decision.shift_wave_clock
        started = False
        if decision.start_wave is not None:
            r.grace_skipped = False
            r.current_wave_started_at = self._store.clock()
            started = await self.start_wave(
                row, attempt=decision.attempt, wave=decision.start_wave
            )
        if decision.status in TERMINAL_STATUSES:
            aborted = decision.status is RolloutStatus.ABORTED
            why = "aborted" if aborted else f"rollout_{decision.status.value}"
            for _, t in self._targets(row.id):
                if not t.active:
                    continue
                t.active = False
                if t.state == "assigned" or (t.state == "pending" and aborted):
                    t.state, t.reason = "skipped", why
        return started

    async def start_wave(self, row: RolloutRow, *, attempt: int, wave: int) -> bool:
        self._store.fail("start_wave")
        if (row.id, attempt, wave) in self.s.runs:
            return False
        eligible = sum(
            1
            for _, t in self._targets(row.id)
            if t.wave == wave and t.state == "pending" and t.active
        )
        self.s.runs[(row.id, attempt, wave)] = Run(eligible=eligible)
        return True

    async def time_out_wave(self, row: RolloutRow, wave: int) -> int:
        gone = [
            t
            for _, t in self._targets(row.id)
            if t.wave == wave and t.active and t.state in ("assigned", "pending")
        ]
        for t in gone:
            t.state, t.reason = "failed", "timed_out"
        self.s.runs[(row.id, row.attempt, wave)].failed += len(gone)
        return len(gone)

    async def reset_for_retry(self, rollout_id: UUID) -> tuple[int, int]:
        candidates = [
            (d, t)
            for d, t in self._targets(rollout_id)
            if t.state != "applied" and not t.active
        ]
        again = 0
        for d, t in candidates:
            if not self._held_elsewhere(rollout_id, t.tenant, d):
                t.state, t.reason, t.active = "pending", None, True
                again += 1
        for wave in range(1, self.s.rollouts[rollout_id].waves + 1):
            self.s.prior[(rollout_id, wave)] = sum(
                1
                for _, t in self._targets(rollout_id)
                if t.wave == wave and t.state == "applied"
            )
        return again, len(candidates) - again

    async def assign_chunk(self, rollout_id: UUID, limit: int) -> int:
        self._store.fail("assign_chunk")
        r = self.s.rollouts[rollout_id]
        run = self.s.runs.get((r.id, r.attempt, r.current_wave or 0))
        if r.status is not RolloutStatus.RUNNING or run is None:
            return 0
        skip = (r.effective_policy or {}).get("skip_offline", True)
        batch = [
            (d, t)
            for d, t in self._targets(rollout_id)
            if t.wave == r.current_wave and t.state == "pending" and t.active
        ][:limit]
        told = []
        for d, t in batch:
            if skip and not self.s.devices[(t.tenant, d)].online:
                t.state, t.reason = "skipped", "offline"
                run.eligible -= 1
                run.skipped += 1
            else:
                t.state = "assigned"
                runs = self.s.devices[(t.tenant, d)].artifact
                if runs != _target_artifact(r, t):
                    t.from_artifact = runs
                told.append((t.tenant, d))
        await self.settle_devices(told)
        return len(batch)

    async def prewrite_next(self, rollout_id: UUID) -> int | None:
        return 0  # the whole plan was written at the start

    async def settle_devices(self, devices: Sequence[tuple[str, str]]) -> Settled:
        touched: set[UUID] = set()
        moved: dict[tuple[str, str], tuple[str, int]] = {}
        for tenant, device_id in devices:
            d = self.s.devices[(tenant, device_id)]
            for (rid, dev), t in self.s.targets.items():
                r = self.s.rollouts[rid]
                if dev != device_id or t.tenant != tenant or not t.active:
                    continue
                if t.state != "assigned" or r.status is not RolloutStatus.RUNNING:
                    continue
                require_ok = (r.effective_policy or {}).get("require_ok", True)
                artifact = _target_artifact(r, t)
                runs_it = d.artifact == artifact
                if runs_it and (d.healthy or not require_ok):
                    t.state = "applied"
                elif d.failed_artifact == artifact:
                    t.state, t.reason = "failed", d.failed_code or "apply_failed"
                elif runs_it and require_ok:
                    t.state, t.reason = "failed", "unhealthy"
                else:
                    continue
                run = self.s.runs[(rid, r.attempt, t.wave)]
                if t.state == "applied":
                    run.succeeded += 1
                else:
                    run.failed += 1
                touched.add(rid)
                moved[(tenant, device_id)] = (t.state, t.wave)
        return Settled(touched, moved)

    async def enqueue_events(self, events: Sequence[RolloutEvent]) -> None:
        self._store.fail("enqueue_events")
        append_events(self.s.outbox, events)
