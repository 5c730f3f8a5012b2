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
from xdp47_scheduler.ports import AnalysedBeat, RolloutTx

ANALYSED, PLAIN = uuid.uuid4(), uuid.uuid4()
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class _Tx:
    def __init__(self) -> None:
        self.sent: list[AnalysedBeat] = []

    async def analysed_metrics(
        self, rollout_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, frozenset[str]]:
        return {
            r: frozenset({"cpu"}) if r == ANALYSED else frozenset() for r in rollout_ids
        }

    async def record_samples(self, beats: Sequence[AnalysedBeat]) -> None:
        self.sent.extend(beats)


def _result(*devices: DeviceHeartbeatState) -> HeartbeatWriteResult:
    beats = {
        (d.tenant, d.device_id): Heartbeat(
            seq=1, device_id=d.device_id, received_at=NOW, metrics={"cpu": 0.5}
        )
        for d in devices
    }
    return HeartbeatWriteResult(
        changed=devices, unknown=0, stale=0, superseded=0, beats=beats
    )


def _device(
    name: str, rollout: uuid.UUID | None, state: str | None, wave: int | None
) -> DeviceHeartbeatState:
    return DeviceHeartbeatState("acme", name, NOW, rollout, state, wave, None)


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
