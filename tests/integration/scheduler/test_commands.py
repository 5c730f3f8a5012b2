"""Abort and retry, redelivered commands and heartbeats, and two schedulers."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.scheduler.conftest import scheduler_settings
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
    runs,
    status_is,
    step,
    targets,
    wait_for,
)
from xdp47_common.clock import utcnow
from xdp47_common.messages import Heartbeat, HeartbeatReceived
from xdp47_scheduler.service import Scheduler

pytestmark = pytest.mark.integration


def only(ids: set[str]):
    def behave(device: SimDevice, artifact: uuid.UUID) -> None:
        if device.id in ids:
            applies(device, artifact)

    return behave


async def test_abort_keeps_devices_not_yet_updated_on_their_version(
    pool, scheduler, ingest, commands, events
) -> None:
    fleet = await make_fleet(pool, 6)
    pid = await make_policy(pool, fleet.tenant, grace_seconds=600)
    rid = await make_rollout(pool, fleet, waves=2, policy_id=pid)
    await commands.start(fleet.tenant, rid)
    await wait_for(lambda: _assigned(pool, rid))
    t = await targets(pool, rid)
    # The started wave's targets and, written ahead as pending, the next wave's.
    await wait_for(lambda: _written(pool, rid, 6))
    t = await targets(pool, rid)
    wave1 = [d for d in fleet.devices if t[d.id]["wave"] == 1]
    assert len(wave1) == 3
    assert {r["state"] for r in t.values() if r["wave"] == 2} == {"pending"}
    lucky = wave1[0]

    async def lucky_applied():
        await step(ingest, fleet.devices, only({lucky.id}))
        assert (await targets(pool, rid))[lucky.id]["state"] == "applied"

    await wait_for(lucky_applied)
    await commands.abort(fleet.tenant, rid)
    await wait_for(lambda: _status(pool, rid, "aborted"))
    row = await rollout_row(pool, rid)
    assert row["reason"] == "aborted by ops"
    t = await targets(pool, rid)
    devices = {
        r["id"]: r
        for r in await pool.fetch(
            "SELECT * FROM devices WHERE tenant = $1", fleet.tenant
        )
    }
    assert devices[lucky.id]["desired_artifact_id"] == fleet.artifact_id
    for d in fleet.devices:
        if d is lucky:
            continue
        # Wave 2 never started (never told); its targets written ahead are
        # skipped like the rest.
        assert (t[d.id]["state"], t[d.id]["reason"]) == ("skipped", "aborted")
        assert devices[d.id]["desired_artifact_id"] is None
        assert devices[d.id]["current_artifact_id"] is None
    assert not any(r["active"] for r in t.values())
    (run,) = await runs(pool, rid)
    assert (run["outcome"], run["succeeded"]) == ("aborted", 1)
    # A second abort is a no-op.
    await commands.abort(fleet.tenant, rid)
    await wait_for(lambda: _event(events, rid, "aborted"))


async def _written(pool, rid, n):
    assert len(await targets(pool, rid)) == n


async def _assigned(pool, rid):
    t = await targets(pool, rid)
    assert any(r["state"] == "assigned" for r in t.values())


async def _status(pool, rid, status):
    row = await rollout_row(pool, rid)
    assert row["status"] == status, (row["status"], row["reason"])
    return row


async def _event(events, rid, name):
    assert name in events.names(rid)


async def test_retry_retargets_failed_devices_in_a_new_attempt(
    pool, scheduler, ingest, commands, events
) -> None:
    fleet = await make_fleet(pool, 4)
    rid = await make_rollout(pool, fleet, waves=2)
    await commands.start(fleet.tenant, rid)
    await drive(pool, ingest, rid, fleet.devices, fails, until=status_is("failed"))
    # Their last failure reports are written before the retry starts.
    await reported(pool, ingest, fleet.devices)
    await commands.retry(fleet.tenant, rid)
    await wait_for(lambda: _status(pool, rid, "running"))
    # The devices still report their old failure; only a new report counts.
    row = await drive(
        pool, ingest, rid, fleet.devices, applies, until=status_is("completed")
    )
    assert row["attempt"] == 2
    history = [(r["attempt"], r["wave"], r["outcome"]) for r in await runs(pool, rid)]
    assert history == [
        (1, 1, "failed"),
        (2, 1, "succeeded"),
        (2, 2, "succeeded"),
    ]
    assert {r["state"] for r in (await targets(pool, rid)).values()} == {"applied"}
    await wait_for(lambda: _event(events, rid, "retried"))


async def test_retry_retargets_skipped_devices(
    pool, scheduler, ingest, commands
) -> None:
    fleet = await make_fleet(pool, 2)
    away = await make_fleet(pool, 1, tenant=fleet.tenant, status="offline")
    rid = await make_rollout(pool, fleet, waves=1)
    await commands.start(fleet.tenant, rid)
    await drive(pool, ingest, rid, fleet.devices, applies, until=status_is("partial"))
    everyone = fleet.devices + away.devices
    await step(ingest, away.devices, applies)  # back online

    async def online():
        status = await pool.fetchval(
            "SELECT status FROM devices WHERE id = $1", away.devices[0].id
        )
        assert status == "online"

    await wait_for(online)
    await commands.retry(fleet.tenant, rid)
    row = await drive(
        pool, ingest, rid, everyone, applies, until=status_is("completed")
    )
    assert row["attempt"] == 2
    second = [r for r in await runs(pool, rid) if r["attempt"] == 2]
    assert [(r["eligible"], r["succeeded"], r["skipped"]) for r in second] == [
        (1, 1, 0)
    ]


async def test_a_command_delivered_twice_has_one_effect(
    pool, scheduler, ingest, commands
) -> None:
    fleet = await make_fleet(pool, 2)
    rid = await make_rollout(pool, fleet, waves=1)
    start = await commands.start(fleet.tenant, rid)
    await commands.send(start)
    await drive(pool, ingest, rid, fleet.devices, fails, until=status_is("failed"))
    retry = await commands.retry(fleet.tenant, rid)
    await commands.send(retry)  # the same message again
    # A later command marks when the duplicate has been consumed (FIFO).
    marker = await commands.abort(fleet.tenant, rid)

    async def consumed():
        n = await pool.fetchval(
            "SELECT count(*) FROM inbox WHERE message_id = $1", marker.message_id
        )
        assert n == 1

    await drive(pool, ingest, rid, fleet.devices, fails, until=status_is("failed"))
    await wait_for(consumed)
    row = await rollout_row(pool, rid)
    assert row["attempt"] == 2
    assert [(r["attempt"], r["wave"]) for r in await runs(pool, rid)] == [
        (1, 1),
        (2, 1),
    ]


async def test_a_heartbeat_delivered_twice_counts_once(
    pool, scheduler, ingest, commands
) -> None:
    fleet = await make_fleet(pool, 2)
    pid = await make_policy(pool, fleet.tenant, grace_seconds=600)
    rid = await make_rollout(pool, fleet, waves=1, policy_id=pid)
    await commands.start(fleet.tenant, rid)
    await wait_for(lambda: _assigned(pool, rid))
    a, b = fleet.devices
    beat = HeartbeatReceived(
        tenant=fleet.tenant,
        heartbeat=Heartbeat(
            device_id=a.id,
            seq=100,
            current_artifact_id=fleet.artifact_id,
            health="ok",
            received_at=utcnow(),
        ),
    )
    for _ in range(2):
        await commands._publisher.publish(
            commands._topology.telemetry, f"heartbeat.{fleet.tenant}", beat
        )

    async def counted(n):
        (run,) = await runs(pool, rid)
        assert run["succeeded"] == n

    await wait_for(lambda: counted(1))
    b.seq = 200
    applies(b, fleet.artifact_id)
    await b.beat(ingest)
    await wait_for(lambda: counted(2))
    t = await targets(pool, rid)
    assert {t[a.id]["state"], t[b.id]["state"]} == {"applied"}


async def test_two_schedulers_start_each_wave_exactly_once(
    pool, db_url, amqp_url, sched_topology, scheduler, ingest, commands, events
) -> None:
    second = Scheduler(scheduler_settings(db_url, amqp_url, sched_topology.namespace))
    await second.start()
    try:
        fleet = await make_fleet(pool, 12)
        rid = await make_rollout(pool, fleet, waves=3)
        start = await commands.start(fleet.tenant, rid)
        await commands.send(start)
        await drive(
            pool, ingest, rid, fleet.devices, applies, until=status_is("completed")
        )
    finally:
        await second.stop()
    assert [(r["attempt"], r["wave"]) for r in await runs(pool, rid)] == [
        (1, 1),
        (1, 2),
        (1, 3),
    ]

    async def all_events():
        assert "completed" in events.names(rid)

    await wait_for(all_events)
    # Two relays publish at once: events may arrive out of order, and are
    # ordered by when they were decided (docs/api.md).
    decided = sorted(events.of(rid), key=lambda e: e.occurred_at)
    assert decided[-1].event == "completed"
    started = [e.wave for e in decided if e.event == "wave_started"]
    assert started == [1, 2, 3]
    assert events.names(rid).count("started") == 1
