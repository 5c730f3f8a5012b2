"""Scenario 1: RabbitMQ is SIGKILLed and restarted three times during a rollout.

The suite's own node is killed when waves 1, 2 and 3 have started (a random
moment of up to a second later) and started again on the same ports and data dir
after a short outage. Figures: every heartbeat ingest answered 202 is in the
database (``devices.last_seq`` at least the highest acked ``seq`` of each device),
no device is told to update twice, the rollout ends as the undisturbed run did,
the work queues drain, ingest answered 503 with Retry-After (never 500) while the
broker was down, and no service needed a restart.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from tests.faults.harness import (
    Outcome,
    drive_rollout,
    figure,
    new_fleet,
    open_stack,
    queues_drained,
    rollout_status,
    wait_for,
)
from tests.support.brokers import OwnPostgres, OwnRabbit

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(420)]

KILLS = 3
OUTAGE = 2.0


async def test_broker_killed_three_times_during_a_rollout(
    own_pg: OwnPostgres,
    own_rabbit: OwnRabbit,
    undisturbed: Outcome,
    tmp_path: Path,
) -> None:
    rng = random.Random()
    with open_stack(own_pg, own_rabbit, tmp_path) as stack:
        fleet = new_fleet(stack)
        outage_codes: dict[int, int] = {}

        async def kill_three_times(rollout_id: str) -> None:
            for wave in range(1, KILLS + 1):

                async def wave_started(wave: int = wave) -> bool:
                    status, current = await rollout_status(stack.db_url, rollout_id)
                    return status != "running" or (current or 0) >= wave

                await wait_for(wave_started, within=120)
                await asyncio.sleep(rng.uniform(0, 1))
                before = dict(fleet.codes)
                await asyncio.to_thread(own_rabbit.kill)
                await asyncio.sleep(OUTAGE)
                await asyncio.to_thread(own_rabbit.start)
                for code, n in fleet.codes.items():
                    outage_codes[code] = (
                        outage_codes.get(code, 0) + n - before.get(code, 0)
                    )

        try:
            outcome = await drive_rollout(stack, fleet, fault=kill_three_times)
        finally:
            await fleet.close()
        drained = await queues_drained(own_rabbit.amqp_url, stack.topology)
        alive = all(
            p.running
            for p in (stack.plane.api, stack.plane.ingest, stack.plane.scheduler)
        )

    figure(
        f"FAULT broker-restart-x{KILLS}: accepted={outcome.accepted} "
        f"persisted={outcome.persisted}/{len(fleet.devices)} "
        f"missing={outcome.missing} double_assign={outcome.double_assign} "
        f"terminal={outcome.status} (undisturbed={undisturbed.status}) "
        f"queues_drained={str(drained).lower()} "
        f"ingest_503={outage_codes.get(503, 0)} "
        f"ingest_5xx_other={outcome.server_errors} "
        f"state_equal={str(outcome.state == undisturbed.state).lower()}"
    )
    assert outcome.missing == 0, "acked heartbeats missing from the database"
    assert outcome.double_assign == 0, fleet.told_twice()[:10]
    assert outcome.status == undisturbed.status
    assert drained, "work queues did not drain"
    assert alive, "a service exited during the broker outages"
    assert outcome.server_errors == 0, outcome.codes
    assert outage_codes.get(503, 0) > 0, f"no 503 during the outages: {outage_codes}"
    assert outcome.unavailable_without_retry_after == 0
