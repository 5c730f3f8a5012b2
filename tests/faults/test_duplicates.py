"""Scenario 4: every message is delivered twice and 10 % of deliveries are
requeued unprocessed; the final database state equals the undisturbed run's.

Twice: a test queue bound like the work queues (``heartbeat.*`` on telemetry,
``rollout.*`` on commands) gets a copy of every message, and the test publishes
each copy again, byte for byte with the same message id, straight into its work
queue (the default exchange), as a publisher retry after a lost confirm would.
Requeued: the scheduler runs on ``tests.support.requeuing_bus`` (the real
scheduler on a bus whose consumers give 10 % of deliveries back to the queue
before looking at them); production code has no such switch.
"""

from __future__ import annotations

import re
from pathlib import Path

import aio_pika
import pytest

from tests.faults.harness import (
    Outcome,
    diff_states,
    drive_rollout,
    figure,
    new_fleet,
    open_stack,
    queues_drained,
    scrape,
)
from tests.support.brokers import OwnPostgres, OwnRabbit
from tests.support.requeuing_bus import SCHEDULER, SHARE_ENV

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(300)]

SHARE = 0.1


def metric_sum(text: str, name: str) -> float:
    pattern = re.compile(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


async def test_every_message_twice_and_a_tenth_requeued(
    own_pg: OwnPostgres,
    own_rabbit: OwnRabbit,
    undisturbed: Outcome,
    tmp_path: Path,
) -> None:
    duplicated = 0
    env = {SHARE_ENV: str(SHARE)}
    with open_stack(
        own_pg, own_rabbit, tmp_path, extra_env=env, scheduler_command=SCHEDULER
    ) as stack:
        t = stack.topology
        connection = await aio_pika.connect(own_rabbit.amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        copies = await channel.declare_queue(exclusive=True, auto_delete=True)
        await copies.bind(t.telemetry, routing_key="heartbeat.*")
        await copies.bind(t.commands, routing_key="rollout.*")
        target = {t.telemetry: t.heartbeats_queue, t.commands: t.commands_queue}

        async def duplicate(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal duplicated
            again = aio_pika.Message(
                body=message.body,
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message.message_id,
                type=message.type,
                headers=dict(message.headers or {}),
            )
            await channel.default_exchange.publish(
                again, routing_key=target[message.exchange or ""]
            )
            duplicated += 1
            await message.ack()

        await copies.consume(duplicate)
        fleet = new_fleet(stack)
        try:
            outcome = await drive_rollout(stack, fleet)
        finally:
            await fleet.close()
        drained = await queues_drained(own_rabbit.amqp_url, t)
        await connection.close()
        metrics = await scrape(stack.plane.scheduler_url)
        requeued = int(metric_sum(metrics, "xdp47_consumer_fault_requeues_total"))

    equal = outcome.state == undisturbed.state
    figure(
        f"FAULT duplicate-x2-requeue-10pct: duplicated={duplicated} "
        f"requeued={requeued} state_equal={str(equal).lower()} "
        f"(digest {outcome.digest} vs {undisturbed.digest}) "
        f"missing={outcome.missing} double_assign={outcome.double_assign} "
        f"terminal={outcome.status} (undisturbed={undisturbed.status}) "
        f"queues_drained={str(drained).lower()}"
    )
    assert duplicated > 0, "the copies did not flow"
    assert requeued > 0, "the fault injection did not requeue anything"
    assert equal, diff_states(outcome.state, undisturbed.state)
    assert outcome.missing == 0
    assert outcome.double_assign == 0
    assert drained
