"""The telemetry analysis part of the in-memory ``RolloutTx`` (a mixin of
``memory_store.MemoryTx``): the running aggregates of ``xdp47_scheduler.pg.analysis``
in plain Python, keyed (rollout, attempt, wave, cohort, metric)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from xdp47_common.rollout import (
    AnalysisPolicy,
    Cohort,
    MetricAggregate,
    Observations,
    RolloutStatus,
)
from xdp47_scheduler.ports import MetricSample, RolloutRow

if TYPE_CHECKING:
    from tests.unit.scheduler.memory_state import State


class MemoryAnalysis:
    s: State

    async def analysed_metrics(
        self, rollout_ids: Sequence[UUID]
    ) -> dict[UUID, frozenset[str]]:
        out: dict[UUID, frozenset[str]] = {}
        for rid in rollout_ids:
            policy = (self.s.rollouts[rid].effective_policy or {}).get("analysis")
            out[rid] = (
                frozenset(AnalysisPolicy.model_validate(policy).metrics)
                if policy
                else frozenset()
            )
        return out

    async def record_samples(self, samples: Sequence[MetricSample]) -> None:
        counted: list[tuple[Any, tuple[int, int]]] = []  # (Target, window)
        for sample in samples:
            held = [
                (rid, t)
                for (rid, dev), t in self.s.targets.items()
                if dev == sample.device_id and t.tenant == sample.tenant and t.active
            ]
            if not held:
                continue
            rid, t = held[0]
            r = self.s.rollouts[rid]
            if r.status is not RolloutStatus.RUNNING or r.current_wave is None:
                continue
            if t.state == "applied" and t.wave == r.current_wave:
                cohort = Cohort.UPDATED.value
            elif t.state == "pending" and t.wave > r.current_wave:
                cohort = Cohort.BASELINE.value
            else:
                continue
            window = (r.attempt, r.current_wave)
            key = (rid, r.attempt, r.current_wave, cohort, sample.metric)
            devices, n, total = self.s.analysis.get(key, (0, 0, 0.0))
            first = t.analysed_window != window
            self.s.analysis[key] = (devices + first, n + 1, total + sample.value)
            counted.append((t, window))
        # A device counts once per window: marked after all its samples.
        for t, window in counted:
            t.analysed_window = window

    async def analysis(self, row: RolloutRow) -> Observations:
        return {
            (Cohort(cohort), metric): MetricAggregate(devices, n, total)
            for (rid, attempt, wave, cohort, metric), (
                devices,
                n,
                total,
            ) in self.s.analysis.items()
            if rid == row.id and attempt == row.attempt and wave == row.current_wave
        }
