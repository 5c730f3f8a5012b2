"""Feed the telemetry analysis from heartbeat batches, on the batch's transaction.

The heartbeat write returns, for each changed device, the rollout of its active
target (``DeviceHeartbeatState.rollout_id``) with the target's state, wave and
analysed window, which the store decides the device's cohort from. A target
that was assigned is taken as the batch's settling left it: moved (applied or
failed, ``Settled.moved``: a device that applies with this heartbeat counts as
updated in this very batch), or still assigned, which is no cohort, so its
heartbeat is not sent at all (in a running wave, every device that has not
reported yet). Only devices of rollouts whose
policy has an analysis are sampled, and only the metrics its checks read: the
analysed metrics of each rollout are asked once (a rollout keeps its policy
from its start) and remembered, so a batch of devices in no analysed rollout
costs no statement at all. Values that are not finite numbers (text, booleans,
NaN) are not samples.

A device is sent on its own only while it is not yet counted in its rollout's
current window (its target's ``analysed_window`` as the write found it): the
statement decides its cohort and marks it. The heartbeats of devices counted
there already (in a steady wave, nearly all) are summed here instead, per
rollout, cohort and metric, with the cohort decided by the window the feed
knows: the one the statement returned the last time it was sent a device of
that rollout. The statement drops sums whose window is no longer current, so
after a wave starts, the first batch of each scheduler process may lose those
sums (never a device's count: such a device is sent on its own at its next
heartbeat). A rollout whose window is not known (first seen, or not running)
has every device sent on its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from uuid import UUID

from xdp47_common.rollout import Cohort
from xdp47_scheduler.heartbeats import HeartbeatWriteResult
from xdp47_scheduler.ports import (
    AnalysedBeat,
    RolloutTx,
    SummedSamples,
    window_wave,
)

__all__ = ["AnalysisFeed"]

# The target states a cohort is made of: ``updated`` (applied in the current
# wave) and ``baseline`` (pending in a later one); the statement decides which
# by the rollout's current wave.
_COHORT_STATES = frozenset({"applied", "pending"})

_UPDATED, _BASELINE = Cohort.UPDATED.value, Cohort.BASELINE.value

# Remembered rollouts at most; forgetting costs one small query on the next
# heartbeat of a device of a forgotten rollout.
_REMEMBERED = 10_000


def _number(value: object) -> float | None:
    if type(value) is float:  # the usual metric: skip the generic checks
        return value if value - value == 0.0 else None  # NaN and inf are not
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class AnalysisFeed:
    """The samples of one scheduler process's heartbeat batches."""

    def __init__(self) -> None:
        self._metrics: dict[UUID, frozenset[str]] = {}
        # The current window of each running analysed rollout, as the last
        # statement sent one of its devices answered.
        self._windows: dict[UUID, int] = {}

    async def record(
        self,
        tx: RolloutTx,
        result: HeartbeatWriteResult,
        moved: Mapping[tuple[str, str], tuple[str, int]],
    ) -> int:
        """Add the batch's samples to the aggregates; how many were added.
        ``moved``: the targets the batch's settling moved (``Settled.moved``)."""
        held = [d for d in result.changed if d.rollout_id is not None]
        if not held:
            return 0
        unknown = {d.rollout_id for d in held} - self._metrics.keys()
        if unknown:
            if len(self._metrics) > _REMEMBERED:
                self._metrics.clear()
            ids = sorted(r for r in unknown if r is not None)
            self._metrics.update(await tx.analysed_metrics(ids))
        beats: list[AnalysedBeat] = []
        sums: dict[tuple[UUID, str, str], list[float]] = {}
        windows = self._windows
        samples = 0
        for device in held:
            rollout = device.rollout_id
            assert rollout is not None  # filtered above
            names = self._metrics.get(rollout)
            if not names:
                continue
            key = (device.tenant, device.device_id)
            if device.assigned:
                settled = moved.get(key)
                if settled is None:
                    continue  # still assigned (or released): no cohort
                state, wave = settled
            elif device.state is None or device.wave is None:
                continue
            else:
                state, wave = device.state, device.wave
            if state not in _COHORT_STATES:
                continue  # failed or skipped: in no cohort, whatever the wave
            beat = result.beats.get(key)
            if beat is None:
                continue
            window = windows.get(rollout)
            if window is not None and device.analysed_window == window:
                # Counted in this window already: only its values add up.
                cohort = _cohort(state, wave, window_wave(window))
                if cohort is not None:
                    samples += _sum_into(sums, rollout, cohort, names, beat.metrics)
                continue
            metrics: list[str] = []
            values: list[float] = []
            for name in names:
                value = _number(beat.metrics.get(name))
                if value is not None:
                    metrics.append(name)
                    values.append(value)
            if metrics:
                beats.append(
                    AnalysedBeat(
                        device.tenant,
                        device.device_id,
                        rollout,
                        state,
                        wave,
                        device.analysed_window,
                        metrics,
                        values,
                    )
                )
                samples += len(metrics)
        if beats or sums:
            summed = [
                SummedSamples(rollout, windows[rollout], cohort, name, int(n), total)
                for (rollout, cohort, name), (n, total) in sums.items()
            ]
            sent = sorted({b.rollout_id for b in beats} | {r for r, _, _ in sums})
            current = await tx.record_samples(beats, summed, sent)
            if len(windows) > _REMEMBERED:
                windows.clear()
            for rollout in sent:
                window = current.get(rollout)
                if window is None:
                    windows.pop(rollout, None)
                else:
                    windows[rollout] = window
        return samples


def _sum_into(
    sums: dict[tuple[UUID, str, str], list[float]],
    rollout: UUID,
    cohort: str,
    names: frozenset[str],
    metrics: Mapping[str, object],
) -> int:
    """Add a heartbeat's values of ``names`` to ``sums`` (per rollout, cohort and
    metric: [samples, total]); how many were added."""
    added = 0
    for name in names:
        value = _number(metrics.get(name))
        if value is not None:
            total = sums.setdefault((rollout, cohort, name), [0.0, 0.0])
            total[0] += 1.0
            total[1] += value
            added += 1
    return added


def _cohort(state: str, wave: int, current_wave: int) -> str | None:
    """The cohort of a target in ``state`` in ``wave`` while the rollout runs
    ``current_wave`` (the rule of ``pg.analysis``'s statement)."""
    if state == "applied" and wave == current_wave:
        return _UPDATED
    if state == "pending" and wave > current_wave:
        return _BASELINE
    return None
