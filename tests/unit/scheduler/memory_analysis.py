"""The telemetry analysis part of the in-memory ``RolloutTx`` (a mixin of
``memory_store.MemoryTx``): the running aggregates of ``xdp47_scheduler.pg.analysis``
in plain Python, keyed (rollout, attempt, wave, cohort, metric)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from xdp47_common.rollout import (
    AnalysisPolicy,
    Cohort,
    MetricAggregate,
    Observations,
    RolloutStatus,
)
from xdp47_scheduler.ports import (
    WINDOWS_PER_ATTEMPT,
    AnalysedBeat,
    RolloutRow,
    SummedSamples,
)

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

    async def record_samples(
        self,
        beats: Sequence[AnalysedBeat],
        sums: Sequence[SummedSamples],
        rollouts: Sequence[UUID],
    ) -> dict[UUID, int]:
        for beat in beats:
            t = self.s.targets.get((beat.rollout_id, beat.device_id))
            if t is None or t.tenant != beat.tenant or not t.active:
                continue
            r = self.s.rollouts[beat.rollout_id]
            if r.status is not RolloutStatus.RUNNING or r.current_wave is None:
                continue
            # As the write found the target, or as the batch's settling moved it.
            state, wave = beat.state, beat.wave
            if state == "applied" and wave == r.current_wave:
                cohort = Cohort.UPDATED.value
            elif state == "pending" and wave > r.current_wave:
                cohort = Cohort.BASELINE.value
            else:
                continue
            window = r.attempt * WINDOWS_PER_ATTEMPT + r.current_wave
            first = t.analysed_window != window
            for metric, value in zip(beat.metrics, beat.values, strict=True):
                self._add(beat.rollout_id, cohort, metric, first, 1, value)
            t.analysed_window = window
        for s in sums:
            if self._window(s.rollout_id) == s.window:
                self._add(s.rollout_id, s.cohort, s.metric, False, s.samples, s.total)
        current = {rid: self._window(rid) for rid in rollouts}
        return {rid: w for rid, w in current.items() if w is not None}

    def _window(self, rid: UUID) -> int | None:
        r = self.s.rollouts[rid]
        if r.status is not RolloutStatus.RUNNING or r.current_wave is None:
            return None
        return r.attempt * WINDOWS_PER_ATTEMPT + r.current_wave

    def _add(
        self, rid: UUID, cohort: str, metric: str, first: bool, n: int, total: float
    ) -> None:
        r = self.s.rollouts[rid]
        assert r.current_wave is not None  # running, with a current wave
        key = (rid, r.attempt, r.current_wave, cohort, metric)
        devices, samples, summed = self.s.analysis.get(key, (0, 0, 0.0))
        self.s.analysis[key] = (devices + first, samples + n, summed + total)

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
