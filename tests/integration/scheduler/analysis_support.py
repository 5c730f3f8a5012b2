"""Helpers of the telemetry analysis tests on the real scheduler."""

from __future__ import annotations

import uuid
from typing import Any

from tests.integration.scheduler.support import (
    Fleet,
    SimDevice,
    applies,
    make_fleet,
    targets,
)

__all__ = [
    "ERR",
    "aggregates",
    "analysed_fleet",
    "analysis_policy",
    "applies_with",
    "has_status",
    "wave_two_written",
]

ERR = "error_rate: updated - baseline <= 0.02"


def analysis_policy(*checks: str, min_devices: int = 2) -> dict[str, Any]:
    return {"checks": list(checks), "min_devices": min_devices}


async def analysed_fleet(pool: Any, n: int) -> Fleet:
    fleet = await make_fleet(pool, n)
    for d in fleet.devices:
        d.metrics = {"error_rate": 0.01, "cpu": 20, "version": "1.0", "ok": True}
    return fleet


def applies_with(**metrics: Any):
    def behave(device: SimDevice, artifact: uuid.UUID) -> None:
        applies(device, artifact)
        device.metrics = device.metrics | metrics

    return behave


async def aggregates(pool: Any, rid: uuid.UUID) -> dict[tuple[Any, ...], Any]:
    rows = await pool.fetch(
        "SELECT attempt, wave, cohort, metric, devices, samples, total "
        "FROM rollout_analysis WHERE rollout_id = $1",
        rid,
    )
    return {
        (r["attempt"], r["wave"], r["cohort"], r["metric"]): (
            r["devices"],
            r["samples"],
            r["total"],
        )
        for r in rows
    }


async def wave_two_written(pool: Any, rid: uuid.UUID) -> dict[str, Any]:
    """A rollout's targets once waves 1 and 2 hold two devices each (wave 2's
    written ahead, as pending; a later wave's not yet) and wave 1's are
    assigned."""
    t = await targets(pool, rid)
    assert sorted(r["wave"] for r in t.values()) == [1, 1, 2, 2]
    assert {r["state"] for r in t.values() if r["wave"] == 1} == {"assigned"}
    return t


async def has_status(pool: Any, rid: uuid.UUID, status: str) -> None:
    row = await pool.fetchrow("SELECT status FROM rollouts WHERE id = $1", rid)
    assert row["status"] == status
