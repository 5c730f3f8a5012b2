"""Per-device truth: a failed target stores the device's failure code and
message (or the metrics that made it unhealthy), every attempt's outcome is kept,
and ``GET /api/devices/{id}`` serves them with the latest heartbeats."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.api.support import auth, client_for, mint, running_app
from tests.integration.scheduler.support import (
    SimDevice,
    applies,
    drive,
    fails,
    make_fleet,
    make_policy,
    make_rollout,
    reported,
    rollout_row,
    status_is,
    targets,
    wait_for,
)
from xdp47_common.models import Scope
from xdp47_common.settings import ControlSettings
from xdp47_common.topology import Topology
from xdp47_scheduler.heartbeats import RECENT_HEARTBEATS

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(db_url, amqp_url, sched_topology: Topology) -> AsyncIterator[Any]:
    settings = ControlSettings(
        db_url=db_url, amqp_url=amqp_url, amqp_namespace=sched_topology.namespace
    )
    async with running_app(settings) as app, client_for(app) as client:
        yield client


def unhealthy(device: SimDevice, artifact: uuid.UUID) -> None:
    applies(device, artifact)
    device.health = "failing"
    device.metrics = {"error_rate": 0.42, "cpu": 91.5, "status": "failing"}


async def test_failure_codes_are_stored_and_every_attempt_is_kept(
    pool, scheduler, ingest, commands, api: httpx.AsyncClient
) -> None:
    fleet = await make_fleet(pool, 3)
    bad, sick, good = fleet.devices
    # A gate that waits for every device: with the default one the first failure
    # ends the rollout and a device whose report lands in a later batch (a loaded
    # machine) is skipped instead of failed with its own reason.
    policy = await make_policy(
        pool, fleet.tenant, max_failures_per_wave=2, min_success_ratio=0.0
    )
    rid = await make_rollout(pool, fleet, policy_id=policy)
    behaviour = {bad.id: fails, sick.id: unhealthy, good.id: applies}

    def behave(device: SimDevice, artifact: uuid.UUID) -> None:
        behaviour[device.id](device, artifact)

    await commands.start(fleet.tenant, rid)
    await drive(
        pool, ingest, rid, fleet.devices, behave, until=status_is("failed", "partial")
    )

    async def all_judged() -> dict[str, Any]:
        t = await targets(pool, rid)
        assert {t[d.id]["state"] for d in (bad, sick)} == {"failed"}, t
        return t

    t = await wait_for(all_judged)
    assert (t[bad.id]["reason"], t[bad.id]["reason_detail"]) == (
        "sha256_mismatch",
        "sha256 mismatch: got 00ff",
    )
    assert t[sick.id]["reason"] == "unhealthy"
    assert t[sick.id]["reason_detail"] == (
        "health failing: cpu=91.5, error_rate=0.42, status=failing"
    )

    # Attempt 2: the two failed devices are told again and now apply (the sick
    # one recovered first, else its first heartbeat fails it again at once).
    sick.health, sick.metrics = "ok", {}
    await reported(pool, ingest, fleet.devices)
    await commands.retry(fleet.tenant, rid)

    async def running() -> None:
        assert (await rollout_row(pool, rid))["status"] == "running"

    await wait_for(running)
    await drive(pool, ingest, rid, fleet.devices, applies, until=status_is("completed"))

    token = await mint(pool, fleet.tenant, [Scope.DEVICES_READ])
    r = await api.get(f"/api/devices/{bad.id}", headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["channel"] == "stable"
    assert body["status"] == "online"
    history = [
        (h["rollout_id"], h["attempt"], h["wave"], h["state"], h["reason"])
        for h in body["rollout_history"]
    ]
    assert history == [
        (str(rid), 2, 1, "applied", None),
        (str(rid), 1, 1, "failed", "sha256_mismatch"),
    ]
    failed = body["rollout_history"][1]
    assert failed["reason_detail"] == "sha256 mismatch: got 00ff"
    assert failed["reason_text"].startswith("The downloaded bytes do not match")
    assert failed["assigned_at"]
    assert failed["finished_at"]
    assert body["rollout_history"][0]["version"] == "2.0"

    beats = body["recent_heartbeats"]
    assert 0 < len(beats) <= RECENT_HEARTBEATS
    assert [b["seq"] for b in beats] == sorted((b["seq"] for b in beats), reverse=True)
    assert beats[0]["seq"] == body["last_seq"]

    r = await api.get(f"/api/devices/{sick.id}", headers=auth(token))
    sick_failure = r.json()["rollout_history"][1]
    assert sick_failure["reason"] == "unhealthy"
    assert "error_rate=0.42" in sick_failure["reason_detail"]


async def test_the_ring_keeps_only_the_latest_heartbeats(
    pool, scheduler, ingest
) -> None:
    fleet = await make_fleet(pool, 1)
    (device,) = fleet.devices
    for _ in range(RECENT_HEARTBEATS + 3):
        device.metrics = {"n": device.seq + 1}
        await device.beat(ingest)

    async def ring() -> list[Any]:
        beats: list[Any] | None = await pool.fetchval(
            "SELECT recent_heartbeats FROM devices WHERE id = $1", device.id
        )
        assert beats is not None
        assert beats[0]["seq"] == device.seq
        return beats

    beats = await wait_for(ring)
    # Heartbeats may be batched (only the newest of a batch is written), so the
    # ring holds the newest few, newest first, never more than its size.
    assert len(beats) <= RECENT_HEARTBEATS
    seqs = [b["seq"] for b in beats]
    assert seqs == sorted(seqs, reverse=True)
    assert all(b["metrics"] == {"n": b["seq"]} for b in beats)
    assert {b["health"] for b in beats} == {"ok"}
    assert all(b["at"] for b in beats)


async def test_another_tenants_device_is_not_found(
    pool, api: httpx.AsyncClient
) -> None:
    mine = await make_fleet(pool, 1)
    theirs = await make_fleet(pool, 1)
    token = await mint(pool, mine.tenant, [Scope.DEVICES_READ])
    r = await api.get(f"/api/devices/{theirs.devices[0].id}", headers=auth(token))
    assert r.status_code == 404
    missing = await api.get("/api/devices/no-such-device", headers=auth(token))
    assert missing.status_code == 404
    assert r.json()["detail"].replace(theirs.devices[0].id, "X") == missing.json()[
        "detail"
    ].replace("no-such-device", "X")
