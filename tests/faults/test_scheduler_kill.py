"""Scenario 3: one of two schedulers is SIGKILLed at random moments and started
again, again and again, while the other keeps running.

Figures: each wave starts exactly once (one ``rollout_runs`` row per wave, at most
one ``wave_started`` event per wave on the events exchange),
no wave starts below its gate, and the rollout ends as the undisturbed run did.
Events come from the outbox, at least once: a kill between the broker's confirm
and the relay's commit publishes one again, with the same event id, which is
what consumers deduplicate by (counted here after deduplication).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path

import aio_pika
import pytest

from tests.faults.harness import (
    Outcome,
    drive_rollout,
    figure,
    new_fleet,
    open_stack,
    rollout_status,
    wave_starts,
)
from tests.support.brokers import OwnPostgres, OwnRabbit
from tests.support.processes import free_port

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(300)]


async def test_a_scheduler_killed_at_random_while_another_runs(
    own_pg: OwnPostgres,
    own_rabbit: OwnRabbit,
    undisturbed: Outcome,
    tmp_path: Path,
) -> None:
    rng = random.Random()
    started: Counter[tuple[int, int]] = Counter()
    seen: set[str] = set()
    kills = 0
    with open_stack(own_pg, own_rabbit, tmp_path) as stack:
        plane = stack.plane
        port = free_port()
        second = stack.group.start(
            "scheduler-b",
            "xdp47-scheduler",
            plane.scheduler.env | {"XDP47_SCHED_HTTP_ADDR": f"127.0.0.1:{port}"},
            ready_url=f"http://127.0.0.1:{port}/readyz",
        )
        connection = await aio_pika.connect(own_rabbit.amqp_url)
        channel = await connection.channel()
        events = await channel.declare_queue(exclusive=True, auto_delete=True)
        await events.bind(stack.topology.events, routing_key="rollout.#")

        async def on_event(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            body = json.loads(message.body)
            if body["message_id"] in seen:
                return  # published again by a relay: the same event
            seen.add(body["message_id"])
            if body.get("event") == "wave_started":
                started[(body["data"].get("attempt", 1), body["wave"])] += 1

        await events.consume(on_event, no_ack=True)
        fleet = new_fleet(stack)

        async def kill_at_random(rollout_id: str) -> None:
            nonlocal kills
            victim = plane.scheduler
            # The start command is asynchronous: "draft" until the scheduler takes it.
            while (await rollout_status(stack.db_url, rollout_id))[0] in (
                "draft",
                "running",
            ):
                # Up to ~3 s: a restarted scheduler is killed while starting, consuming
                # or evaluating gates, whichever the moment falls on.
                await asyncio.sleep(rng.uniform(0.3, 3.0))
                await asyncio.to_thread(victim.kill)
                kills += 1
                victim = await asyncio.to_thread(
                    stack.group.restart, victim, wait=False
                )
            assert second.running, "the second scheduler died"

        try:
            outcome = await drive_rollout(stack, fleet, fault=kill_at_random)
            await asyncio.sleep(1)  # the last events in flight
        finally:
            await fleet.close()
            await connection.close()
        starts = await wave_starts(stack.db_url, outcome.rollout_id)

    figure(
        f"FAULT scheduler-kill-random: kills={kills} waves={starts['waves']} "
        f"runs_per_wave={starts['max_runs_per_wave']} "
        f"wave_started_events={sum(started.values())} "
        f"max_events_per_wave={max(started.values(), default=0)} "
        f"below_gate={len(starts['below_gate'])} missing={outcome.missing} "
        f"terminal={outcome.status} (undisturbed={undisturbed.status})"
    )
    assert kills >= 3, "the rollout ended before the scheduler was killed 3 times"
    assert starts["waves"] == outcome.state["rollout"]["waves"]
    assert starts["max_runs_per_wave"] == 1, starts
    assert starts["below_gate"] == [], starts
    assert max(started.values(), default=0) <= 1, started
    assert outcome.missing == 0
    assert outcome.status == undisturbed.status
