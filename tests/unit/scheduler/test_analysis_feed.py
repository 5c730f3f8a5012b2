"""``AnalysisFeed``: which heartbeats of a batch become samples, with which
target state.

A device whose target was assigned at the write is taken as the batch's
settling left it: sent with its new state when it moved (a device that applies
with this heartbeat is updated in this very batch), not sent at all while it is
still assigned (no cohort). The others go as the write found their target."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from xdp47_common.messages import Heartbeat
from xdp47_scheduler.analysis import AnalysisFeed
from xdp47_scheduler.heartbeats import DeviceHeartbeatState, HeartbeatWriteResult
from xdp47_scheduler.ports import AnalysedBeat, RolloutTx, SummedSamples

ANALYSED, PLAIN = uuid.uuid4(), uuid.uuid4()
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class _Tx:
    def __init__(self, windows: dict[uuid.UUID, int] | None = None) -> None:
        self.sent: list[AnalysedBeat] = []
        self.sums: list[SummedSamples] = []
        self.asked: list[list[uuid.UUID]] = []
        # What the statement answers: each running rollout's current window.
        self.windows = windows or {}

    async def analysed_metrics(
        self, rollout_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, frozenset[str]]:
        return {
            r: frozenset({"cpu"}) if r == ANALYSED else frozenset() for r in rollout_ids
        }

    async def record_samples(
        self,
        beats: Sequence[AnalysedBeat],
        sums: Sequence[SummedSamples],
        rollouts: Sequence[uuid.UUID],
    ) -> dict[uuid.UUID, int]:
        self.sent.extend(beats)
        self.sums.extend(sums)
        self.asked.append(list(rollouts))
        return {r: self.windows[r] for r in rollouts if r in self.windows}


def _result(
    *devices: DeviceHeartbeatState, cpu: dict[str, float] | None = None
) -> HeartbeatWriteResult:
    """A batch of ``devices`` reporting cpu 0.5, or their value in ``cpu``."""
    beats = {
        (d.tenant, d.device_id): Heartbeat(
            seq=1,
            device_id=d.device_id,
            received_at=NOW,
            metrics={"cpu": (cpu or {}).get(d.device_id, 0.5)},
        )
        for d in devices
    }
    return HeartbeatWriteResult(
        changed=devices, unknown=0, stale=0, superseded=0, beats=beats
    )


def _device(
    name: str,
    rollout: uuid.UUID | None,
    state: str | None,
    wave: int | None,
    analysed_window: int | None = None,
) -> DeviceHeartbeatState:
    return DeviceHeartbeatState(
        "acme", name, NOW, rollout, state, wave, analysed_window
    )


async def test_assigned_targets_count_as_the_settling_left_them() -> None:
    tx = _Tx()
    result = _result(
        _device("baseline", ANALYSED, "pending", 2),
        _device("applies-now", ANALYSED, "assigned", 1),
        _device("still-updating", ANALYSED, "assigned", 1),
        _device("applied-before", ANALYSED, "applied", 1),
        _device("failed", ANALYSED, "failed", 1),
        _device("skipped", ANALYSED, "skipped", 2),
        _device("unanalysed", PLAIN, "pending", 2),
        _device("in-no-rollout", None, None, None),
    )
    moved: dict[tuple[str, str], tuple[str, int]] = {
        ("acme", "applies-now"): ("applied", 1)
    }
    samples = await AnalysisFeed().record(cast(RolloutTx, tx), result, moved)
    sent = {
        (b.device_id, b.state, b.wave, tuple(b.metrics), tuple(b.values))
        for b in tx.sent
    }
    assert sent == {
        ("baseline", "pending", 2, ("cpu",), (0.5,)),
        ("applies-now", "applied", 1, ("cpu",), (0.5,)),
        ("applied-before", "applied", 1, ("cpu",), (0.5,)),
    }
    assert samples == 3


async def test_a_batch_whose_analysed_devices_all_wait_sends_nothing() -> None:
    tx: Any = _Tx()
    result = _result(_device("still-updating", ANALYSED, "assigned", 1))
    assert await AnalysisFeed().record(tx, result, {}) == 0
    assert tx.sent == []


async def test_only_finite_numbers_are_samples() -> None:
    tx: Any = _Tx()
    values = {
        "float": 0.25,
        "int": 3,
        "nan": float("nan"),
        "inf": float("inf"),
        "bool": True,
        "text": "0.5",
    }
    devices = [_device(name, ANALYSED, "pending", 2) for name in values]
    result = _result(*devices)
    beats = {
        key: beat.model_copy(update={"metrics": {"cpu": values[key[1]]}})
        for key, beat in result.beats.items()
    }
    result = HeartbeatWriteResult(
        changed=result.changed, unknown=0, stale=0, superseded=0, beats=beats
    )
    await AnalysisFeed().record(tx, result, {})
    assert {b.device_id: b.values for b in tx.sent} == {
        "float": [0.25],
        "int": [3.0],
    }


async def test_devices_counted_in_the_known_window_are_summed() -> None:
    """The first batch of a rollout sends every device on its own and learns
    the rollout's window; from then on, the devices counted in that window
    already go as sums per cohort, and only the others on their own."""
    window = 1001  # attempt 1, wave 1
    tx = _Tx({ANALYSED: window})
    feed = AnalysisFeed()
    first = _result(_device("baseline", ANALYSED, "pending", 2, window))
    await feed.record(cast(RolloutTx, tx), first, {})
    assert [b.device_id for b in tx.sent] == ["baseline"]  # window not known yet
    assert tx.sums == []
    assert tx.asked == [[ANALYSED]]

    tx.sent.clear()
    second = _result(
        _device("baseline", ANALYSED, "pending", 2, window),
        _device("baseline-too", ANALYSED, "pending", 3, window),
        _device("updated", ANALYSED, "applied", 1, window),
        _device("new-baseline", ANALYSED, "pending", 2, None),
        _device("counted-before", ANALYSED, "pending", 2, window - 1),
        _device("applies-now", ANALYSED, "assigned", 1, None),
        _device("applied-earlier-wave", ANALYSED, "applied", 0, window),
        cpu={"baseline-too": 0.25, "updated": 0.75},
    )
    moved = {("acme", "applies-now"): ("applied", 1)}
    samples = await feed.record(cast(RolloutTx, tx), second, moved)
    assert sorted(b.device_id for b in tx.sent) == [
        "applies-now",
        "counted-before",
        "new-baseline",
    ]
    assert sorted(tx.sums) == [
        SummedSamples(ANALYSED, window, "baseline", "cpu", 2, 0.75),
        SummedSamples(ANALYSED, window, "updated", "cpu", 1, 0.75),
    ]
    assert samples == 6


async def test_a_rollout_no_longer_running_is_sent_device_by_device() -> None:
    """Without a window answered (the rollout paused, ended, or its wave
    moved on), the feed sums nothing for it until a statement answers one."""
    tx = _Tx({ANALYSED: 1001})
    feed = AnalysisFeed()
    batch = _result(_device("baseline", ANALYSED, "pending", 2, 1001))
    await feed.record(cast(RolloutTx, tx), batch, {})
    tx.windows.clear()  # paused
    await feed.record(cast(RolloutTx, tx), batch, {})
    assert len(tx.sums) == 1  # the second batch summed by the known window
    await feed.record(cast(RolloutTx, tx), batch, {})
    assert len(tx.sums) == 1
    assert [b.device_id for b in tx.sent] == ["baseline", "baseline"]
    tx.windows[ANALYSED] = 1002  # resumed, and wave 2 started meanwhile
    await feed.record(cast(RolloutTx, tx), batch, {})
    batch = _result(_device("baseline", ANALYSED, "pending", 3, 1002))
    await feed.record(cast(RolloutTx, tx), batch, {})
    assert tx.sums[-1] == SummedSamples(ANALYSED, 1002, "baseline", "cpu", 1, 0.5)
