"""Scenario 7: a three-node RabbitMQ cluster loses the node leading the heartbeat
queue three times during a rollout.

The services get all three nodes in ``XDP47_AMQP_URL`` (multi-host form). When
waves 1, 2 and 3 have started, the node that leads ``scheduler.heartbeats`` is
SIGKILLed; the quorum queue elects a leader on a surviving node, the services'
connections fail over to the next node, and the killed node is started again
(it rejoins the cluster) before the next kill, so the cluster keeps a majority.
The fleet is simulated devices (fewer than the single-node scenarios' 500, with a
shorter interval, so that three node restarts fit in a few minutes on a loaded
machine) plus real agent processes (with their demo apps) under the same label,
which download the uploaded release from the api and apply it through the
outages. The reference is an undisturbed rollout of a fleet of the same size on
the same cluster and services, run first. Figures: every heartbeat ingest
answered 202 is in the database, every real agent applied the release, no
device is told to update twice, no wave started twice, the rollout ends as the
undisturbed one did, the queues drain, and how long ingest answered 503 after
each kill (it answers 503 with Retry-After, never 500, until it has a node).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.fleet import start_fleet
from tests.faults.harness import (
    drive_rollout,
    figure,
    new_fleet,
    open_stack,
    queues_drained,
    rollout_status,
    wait_for,
    wave_starts,
)
from tests.support.brokers import OwnPostgres, OwnRabbitCluster

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(600)]

KILLS = 3
AGENTS = 2
SIZE = 120
INTERVAL = 2.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[OwnRabbitCluster]:
    with OwnRabbitCluster(3) as nodes:
        yield nodes


async def test_leader_node_killed_three_times_during_a_rollout(
    own_pg: OwnPostgres,
    cluster: OwnRabbitCluster,
    tmp_path: Path,
) -> None:
    with open_stack(own_pg, cluster, tmp_path) as stack:
        reference = new_fleet(stack, size=SIZE, interval=INTERVAL)
        try:
            undisturbed = await drive_rollout(stack, reference, within=360)
        finally:
            await reference.close()
        fleet = new_fleet(stack, size=SIZE, interval=INTERVAL)
        agents = await asyncio.to_thread(
            start_fleet,
            stack.plane,
            stack.group,
            tmp_path / "agents",
            name=fleet.name,
            size=AGENTS,
            heartbeat_interval=1.0,
        )
        killed: list[str] = []
        at_wave: list[str] = []
        unavailable_for: list[float] = []

        async def kill_leader_three_times(rollout_id: str) -> None:
            loop = asyncio.get_running_loop()
            queue = stack.topology.heartbeats_queue
            for wave in range(1, KILLS + 1):

                async def wave_started(wave: int = wave) -> bool:
                    status, current = await rollout_status(stack.db_url, rollout_id)
                    return status != "running" or (current or 0) >= wave

                await wait_for(wave_started, within=120)

                async def all_members_online() -> bool:
                    members = await asyncio.to_thread(
                        cluster.queue_members_online, queue
                    )
                    return members == len(cluster.nodes)

                # A quorum queue survives one lost member of three: kill only
                # when every member is back (the previous kill's node rejoined).
                await wait_for(all_members_online, within=120, every=1)
                status, current = await rollout_status(stack.db_url, rollout_id)
                at_wave.append(str(current) if status == "running" else status)
                leader = await asyncio.to_thread(cluster.queue_leader, queue)
                node = cluster.node_named(leader)
                before = fleet.codes[503]
                killed_at = loop.time()
                await asyncio.to_thread(node.kill)
                killed.append(leader.split("@")[0][-2:])
                # How long ingest answers 503: until a heartbeat is accepted
                # again after the kill (the fleet beats all the time).
                accepted = fleet.codes[202]

                async def accepting_again(accepted: int = accepted) -> bool:
                    return fleet.codes[202] > accepted

                await wait_for(accepting_again, within=90, every=0.05)
                unavailable_for.append(
                    round(loop.time() - killed_at, 1)
                    if fleet.codes[503] > before
                    else 0.0
                )
                # Back into the cluster before the next kill: a quorum queue
                # needs a majority of its three members.
                await asyncio.to_thread(node.start)
                await asyncio.to_thread(cluster.wait_clustered)

        try:
            outcome = await drive_rollout(
                stack,
                fleet,
                fault=kill_leader_three_times,
                within=360,
                release=b"release 2.0.0 for the cluster scenario\n" * 1000,
            )
        finally:
            await fleet.close()
        applied = [d.applied_version for d in agents.devices]
        drained = await queues_drained(cluster.amqp_url, stack.topology)
        starts = await wave_starts(stack.db_url, outcome.rollout_id)
        alive = all(
            p.running
            for p in (stack.plane.api, stack.plane.ingest, stack.plane.scheduler)
        )

    figure(
        f"FAULT cluster-leader-kill-x{KILLS}: nodes=3 killed={','.join(killed)} "
        f"at_wave={','.join(at_wave)} "
        f"agents_applied={applied.count('2.0.0')}/{AGENTS} "
        f"accepted={outcome.accepted} persisted={outcome.persisted}/"
        f"{len(fleet.devices)} missing={outcome.missing} "
        f"double_assign={outcome.double_assign} "
        f"max_runs_per_wave={starts['max_runs_per_wave']} "
        f"terminal={outcome.status} (undisturbed={undisturbed.status}) "
        f"queues_drained={str(drained).lower()} "
        f"ingest_503={outcome.codes.get(503, 0)} "
        f"ingest_503_seconds={unavailable_for} "
        f"ingest_5xx_other={outcome.server_errors}"
    )
    assert len(killed) == KILLS
    assert applied == ["2.0.0"] * AGENTS, applied
    assert outcome.missing == 0, "acked heartbeats missing from the database"
    assert outcome.double_assign == 0, fleet.told_twice()[:10]
    assert starts["max_runs_per_wave"] == 1, starts
    assert outcome.status == undisturbed.status
    assert drained, "work queues did not drain"
    assert alive, "a service exited while a broker node was down"
    assert outcome.server_errors == 0, outcome.codes
    assert outcome.unavailable_without_retry_after == 0
