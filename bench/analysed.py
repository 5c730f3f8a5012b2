"""B1's analysis variants: the same heartbeat load from devices in a running rollout,
with the telemetry analysis off (``rollout``) and on (``analysed``).

Each variant has a fleet of its own, claimed on a channel of its own (so no other
variant's devices are in its rollout) and put into a started 2-wave rollout whose
policy never lets wave 1 end during the run (a day of grace, a week of deadline):
half the devices are told to update (the simulator applies and reports the new
version, so they are the updated cohort), half are pending in wave 2 (the
baseline). The ``analysed`` policy checks two metrics the simulator reports, so
every heartbeat of that fleet is aggregated; the ``rollout`` policy has none. Each
variant heartbeats through an ingest process of its own, like the others.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from fleet import claim_devices, save_devices
from stack import Stack

__all__ = ["ANALYSIS_VARIANTS", "CHECKS", "analysed_fleets"]

ANALYSIS_VARIANTS = ("rollout", "analysed")
# The simulator reports cpu 0.12 and mem 0.4 on every heartbeat.
CHECKS = ["cpu: updated / baseline <= 1.3", "mem: updated - baseline <= 0.1"]


async def _rollout(
    client: httpx.AsyncClient, stack: Stack, channel: str, analysis: bool
) -> str:
    tenant = stack.cp.tenant

    async def post(path: str, body: dict[str, Any], code: int) -> Any:
        r = await client.post(path, json=body)
        if r.status_code != code:
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text}")
        return r.json()

    suffix = uuid.uuid4().hex[:6]
    artifact = await post(
        "/api/artifacts",
        {
            "tenant": tenant,
            "uri": f"https://example.invalid/bench-{suffix}.bin",
            "sha256": "b" * 64,
            "size": 1,
            "version": f"bench-{suffix}",
        },
        201,
    )
    policy: dict[str, Any] = {
        "tenant": tenant,
        "name": f"bench {channel} {suffix}",
        "require_ok": True,
        "skip_offline": False,
        "grace_seconds": 86_400,
        "wave_deadline_seconds": 7 * 86_400,
    }
    if analysis:
        policy["analysis"] = {"checks": CHECKS, "min_devices": 3}
    created = await post("/api/policies", policy, 201)
    rollout = await post(
        "/api/rollouts",
        {
            "tenant": tenant,
            "artifact_id": artifact["id"],
            "policy_id": created["id"],
            "channel": channel,
            "waves": 2,
            "name": f"bench {channel}",
        },
        201,
    )
    await post(f"/api/rollouts/{rollout['id']}:start", {}, 202)
    return str(rollout["id"])


async def _planned(stack: Stack, rollout_id: str, devices: int) -> None:
    """Until both waves' targets are written (wave 2 ahead, as pending) and wave
    1's are assigned."""
    db = await stack.db()
    deadline = time.monotonic() + 120
    while True:
        row = await db.fetchrow(
            "SELECT count(*) AS n, count(*) FILTER (WHERE state = 'pending' "
            "AND wave = 1) AS waiting FROM rollout_targets "
            "WHERE rollout_id = $1::text::uuid",
            rollout_id,
        )
        if row is not None and row["n"] == devices and row["waiting"] == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"rollout {rollout_id} not planned: {dict(row or {})}")
        await asyncio.sleep(0.2)  # polling the scheduler's follow-up


async def analysed_fleets(stack: Stack, devices: int) -> dict[str, Path]:
    """Claim a fleet per variant, start its rollout, start its ingest; the
    devices file of each variant."""
    paths: dict[str, Path] = {}
    headers = {"Authorization": f"Bearer {stack.cp.token}"}
    async with httpx.AsyncClient(
        base_url=stack.cp.api_url, headers=headers, timeout=60
    ) as client:
        for variant in ANALYSIS_VARIANTS:
            channel = f"bench-{variant}"
            fleet = await claim_devices(
                stack.cp.api_url,
                stack.cp.token,
                stack.cp.tenant,
                devices,
                prefix=f"b1{variant[0]}",
                channel=channel,
            )
            path = stack.workdir / f"devices-b1-{variant}.json"
            save_devices(fleet, path)
            rollout_id = await _rollout(client, stack, channel, variant == "analysed")
            await _planned(stack, rollout_id, devices)
            if variant not in stack.urls:
                stack.add_ingest(variant)
            paths[variant] = path
    return paths
