"""Scenario 5: poison messages published straight onto the work queues during a
rollout: bad JSON, an unknown ``type``, an unknown tenant (a well-formed heartbeat
of a tenant that does not exist; a start command for a rollout no tenant has) and
an oversized body.

Figures: every one of them ends in its queue's ``.dead`` queue (at the latest
after the delivery limit), the scheduler's ``/metrics`` counts each by reason,
and the rest keeps flowing: the rollout ends as the undisturbed run did, with no
acked heartbeat missing, and the work queues drain.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path

import aio_pika
import pytest

from tests.faults.harness import (
    Outcome,
    drive_rollout,
    figure,
    new_fleet,
    open_stack,
    queue_depth,
    queues_drained,
    rollout_status,
    scrape,
    wait_for,
)
from tests.support.brokers import OwnPostgres, OwnRabbit
from xdp47_common.clock import utcnow
from xdp47_common.messages import Heartbeat, HeartbeatReceived, StartRollout

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(300)]

EACH = 5  # of every kind, on every work queue
OVERSIZED = (1 << 20) + 1024  # the consumers' max_message_bytes is 1 MiB


def poison(queue_kind: str) -> dict[str, list[bytes]]:
    """The poison bodies for the heartbeat or the command queue, by kind."""
    oversized = json.dumps({"type": "x", "pad": "x" * OVERSIZED}).encode()
    if queue_kind == "heartbeats":
        unknown_type = {"type": "heartbeat.exploded", "tenant": "t", "version": 1}
        unknown_tenant = [
            HeartbeatReceived(
                tenant=f"no-such-tenant-{n}",
                heartbeat=Heartbeat(
                    seq=1, device_id=f"ghost-{n}", received_at=utcnow()
                ),
            )
            .model_dump_json()
            .encode()
            for n in range(EACH)
        ]
    else:
        unknown_type = {"type": "rollout.explode", "tenant": "t", "version": 1}
        unknown_tenant = [
            StartRollout(tenant=f"no-such-tenant-{n}", rollout_id=uuid.uuid4())
            .model_dump_json()
            .encode()
            for n in range(EACH)
        ]
    return {
        "bad_json": [b'{"type": "heartbeat.received", "tenant": '] * EACH,
        "unknown_type": [json.dumps(unknown_type).encode()] * EACH,
        "unknown_tenant": unknown_tenant,
        "oversized": [oversized] * EACH,
    }


def dead_lettered(text: str) -> dict[tuple[str, str], int]:
    pattern = re.compile(
        r'^xdp47_messages_dead_lettered_total\{queue="([^"]+)",reason="([^"]+)"\} '
        r"([0-9.e+]+)$",
        re.M,
    )
    return {(q, r): int(float(v)) for q, r, v in pattern.findall(text)}


async def test_poison_is_dead_lettered_counted_and_the_rest_flows(
    own_pg: OwnPostgres,
    own_rabbit: OwnRabbit,
    undisturbed: Outcome,
    tmp_path: Path,
) -> None:
    with open_stack(own_pg, own_rabbit, tmp_path) as stack:
        t = stack.topology
        queues = {"heartbeats": t.heartbeats_queue, "commands": t.commands_queue}
        injected = {name: poison(name) for name in queues}
        total = {
            name: sum(map(len, kinds.values())) for name, kinds in injected.items()
        }
        fleet = new_fleet(stack)

        async def inject(rollout_id: str) -> None:
            async def wave_one() -> bool:
                status, current = await rollout_status(stack.db_url, rollout_id)
                return status != "running" or (current or 0) >= 1

            await wait_for(wave_one, within=60)
            connection = await aio_pika.connect(own_rabbit.amqp_url)
            try:
                channel = await connection.channel(publisher_confirms=True)
                for name, kinds in injected.items():
                    for kind, bodies in kinds.items():
                        for body in bodies:
                            await channel.default_exchange.publish(
                                aio_pika.Message(
                                    body,
                                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                    message_id=str(uuid.uuid4()),
                                    type=kind,
                                ),
                                routing_key=queues[name],
                            )
            finally:
                await connection.close()

        try:
            outcome = await drive_rollout(stack, fleet, fault=inject)
        finally:
            await fleet.close()

        async def all_dead() -> bool:
            depths = [
                await queue_depth(own_rabbit.amqp_url, t.dead_queue(q))
                for q in queues.values()
            ]
            return depths == [total[n] for n in queues]

        await wait_for(all_dead, within=60)
        dead = {
            n: await queue_depth(own_rabbit.amqp_url, t.dead_queue(q))
            for n, q in queues.items()
        }
        drained = await queues_drained(own_rabbit.amqp_url, t)
        counted = dead_lettered(await scrape(stack.plane.scheduler_url))
        await asyncio.sleep(0)

    by_reason: dict[str, int] = {}
    for (_, reason), n in counted.items():
        by_reason[reason] = by_reason.get(reason, 0) + n
    figure(
        f"FAULT poison: injected={sum(total.values())} "
        f"dead_lettered={sum(dead.values())} counted={sum(by_reason.values())} "
        f"by_reason={json.dumps(by_reason, sort_keys=True, separators=(',', ':'))} "
        f"missing={outcome.missing} terminal={outcome.status} "
        f"(undisturbed={undisturbed.status}) queues_drained={str(drained).lower()}"
    )
    assert dead == total, (dead, total)
    assert sum(by_reason.values()) == sum(total.values()), counted
    assert by_reason.get("unknown_rollout", 0) == EACH, counted
    assert by_reason.get("unknown_tenant", 0) == EACH, counted
    assert outcome.missing == 0
    assert outcome.status == undisturbed.status
    assert drained
