"""Roll back on PostgreSQL: targets record what devices ran before; a rollback
command (delivered twice) creates one rollback rollout whose targets each carry
the device's previous artifact, answered by ingest with ``rollback: true``."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.scheduler.support import (
    SimDevice,
    add_artifact,
    applies,
    drive,
    make_fleet,
    make_rollout,
    reported,
    rollout_row,
    status_is,
    targets,
    wait_for,
)
from xdp47_common.messages import RollbackRollout

pytestmark = pytest.mark.integration


async def test_a_rollback_sends_each_device_back_once(
    pool, scheduler, ingest, commands
) -> None:
    fleet = await make_fleet(pool, 4)
    old = await add_artifact(pool, fleet.tenant, version="1.0")
    for d in fleet.devices[:3]:
        d.current_artifact_id = old
    await reported(pool, ingest, fleet.devices)
    rid = await make_rollout(pool, fleet, waves=2)
    await commands.start(fleet.tenant, rid)
    await drive(pool, ingest, rid, fleet.devices, applies, until=status_is("completed"))
    froms = {d: t["from_artifact_id"] for d, t in (await targets(pool, rid)).items()}
    # The fourth device ran nothing before: it has nothing to go back to.
    assert froms == {d.id: old for d in fleet.devices[:3]} | {fleet.devices[3].id: None}

    command = RollbackRollout(
        tenant=fleet.tenant,
        rollout_id=rid,
        rollback_id=uuid.uuid4(),
        requested_by="tests",
    )
    await commands.send(command)
    await commands.send(command)  # redelivered: one effect
    back = command.rollback_id

    async def running() -> None:
        row = await rollout_row(pool, back)
        assert (row["status"], row["kind"], row["rollback_of"]) == (
            "running",
            "rollback",
            rid,
        )

    await wait_for(running)
    told: list[dict[str, object]] = []

    def goes_back(device: SimDevice, artifact: uuid.UUID) -> None:
        told.append({"device": device.id, "artifact": artifact})
        applies(device, artifact)

    await drive(
        pool, ingest, back, fleet.devices, goes_back, until=status_is("completed")
    )
    assert {t["device"] for t in told} == {d.id for d in fleet.devices[:3]}
    assert {t["artifact"] for t in told} == {old}
    assert all(d.current_artifact_id == old for d in fleet.devices[:3])
    assert fleet.devices[3].current_artifact_id == fleet.artifact_id
    rows = await targets(pool, back)
    assert {t["artifact_id"] for t in rows.values()} == {old}
    assert (
        await pool.fetchval("SELECT count(*) FROM rollouts WHERE rollback_of = $1", rid)
        == 1
    )
    assert (await rollout_row(pool, rid))["status"] == "completed"


async def test_the_desired_state_of_a_rollback_is_marked(
    pool, scheduler, ingest, commands
) -> None:
    fleet = await make_fleet(pool, 1)
    old = await add_artifact(pool, fleet.tenant, version="1.0")
    device = fleet.devices[0]
    device.current_artifact_id = old
    await reported(pool, ingest, fleet.devices)
    rid = await make_rollout(pool, fleet)
    await commands.start(fleet.tenant, rid)
    await drive(pool, ingest, rid, fleet.devices, applies, until=status_is("completed"))
    plain = await device.beat(ingest)
    assert plain["rollback"] is False
    command = RollbackRollout(
        tenant=fleet.tenant, rollout_id=rid, rollback_id=uuid.uuid4()
    )
    await commands.send(command)

    async def marked() -> None:
        answer = await device.beat(ingest)
        assert answer["action"] == "update", answer
        assert (answer["artifact_id"], answer["version"]) == (str(old), "1.0")
        assert answer["rollback"] is True
        assert answer["rollout_id"] == str(command.rollback_id)

    await wait_for(marked)
