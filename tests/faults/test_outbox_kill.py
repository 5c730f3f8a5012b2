"""Scenario: the scheduler dies between a commit and the publish of its events,
again and again, and the broker is restarted once, while a webhook receiver on
loopback listens to the rollout.

The scheduler runs with ``XDP47_FAULT_CRASH_AFTER_COMMIT=1``: after every
transaction that wrote events it exits on the spot (code 70), before any relay
could publish them; the scenario starts it again each time, and the relay of the
new process publishes what the dead one committed. The RabbitMQ node is
killed and restarted once, after the first wave started. A webhook worker
(``xdp47-webhooks``) delivers to the receiver.

Figures: every event in the outbox for the rollout reached the receiver, each
exactly once after deduplication by ``X-XDP47-Event-Id``, every request with a
valid signature; no outbox row is left unsent; the rollout ends.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.faults.harness import (
    drive_rollout,
    fetch,
    figure,
    open_stack,
    rollout_status,
    wait_for,
)
from tests.faults.sim import SimFleet
from tests.integration.webhooks.receiver import Receiver
from tests.support.brokers import OwnPostgres, OwnRabbit
from tests.support.processes import free_port
from xdp47_common.messages import RolloutEvent
from xdp47_common.webhooks import verify

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(420)]

OUTAGE = 2.0
FAULT_EXIT = 70


async def test_no_event_is_lost_when_the_scheduler_dies_after_commit(
    own_pg: OwnPostgres,
    own_rabbit: OwnRabbit,
    tmp_path: Path,
) -> None:
    receiver = Receiver()
    await receiver.start()
    env = {
        # Every commit that wrote events is followed by a crash.
        "XDP47_FAULT_CRASH_AFTER_COMMIT": "1",
        "XDP47_OUTBOX_SWEEP": "1",
        "XDP47_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    crashes = 0
    broker_restarts = 0
    with open_stack(own_pg, own_rabbit, tmp_path, extra_env=env) as stack:
        plane = stack.plane
        port = free_port()
        stack.group.start(
            "webhooks",
            "xdp47-webhooks",
            plane.scheduler.env
            | {
                "XDP47_WEBHOOK_HTTP_ADDR": f"127.0.0.1:{port}",
                "XDP47_WEBHOOK_RETRY_DELAYS": "0.5,1,2,4,8,8,8",
                "XDP47_WEBHOOK_SWEEP": "1",
                "XDP47_WEBHOOK_TIMEOUT": "3",
            },
            ready_url=f"http://127.0.0.1:{port}/readyz",
        )
        async with httpx.AsyncClient(
            base_url=plane.api_url, headers=plane.auth, timeout=30
        ) as api:
            r = await api.post("/api/webhooks", json={"url": receiver.url})
            assert r.status_code == 201, r.text
            secret = r.json()["secret"]
        # No failing device: a device that fails while its wave's follow-up
        # waits for the restarted scheduler is judged only at the wave deadline
        # (docs/scheduler.md, Limits), which would outlast the scenario.
        fleet = SimFleet(
            api_url=plane.api_url,
            ingest_url=plane.ingest_url,
            token=plane.token,
            tenant=plane.tenant,
            name=f"o{uuid.uuid4().hex[:6]}",
            size=60,
            interval=2.0,
            fail_every=0,
        )

        current = [plane.scheduler]

        async def crash_and_restart(rollout_id: str) -> None:
            nonlocal crashes, broker_restarts
            victim = current[0]
            while (await rollout_status(stack.db_url, rollout_id))[0] in (
                "draft",
                "running",
            ):
                _, wave = await rollout_status(stack.db_url, rollout_id)
                if broker_restarts == 0 and (wave or 0) >= 1:
                    await asyncio.to_thread(own_rabbit.kill)
                    await asyncio.sleep(OUTAGE)
                    await asyncio.to_thread(own_rabbit.start)
                    broker_restarts += 1
                if not victim.running:
                    code = victim.popen.returncode
                    assert code == FAULT_EXIT, victim.log_tail()
                    crashes += 1
                    victim = await asyncio.to_thread(
                        stack.group.restart, victim, wait=False
                    )
                    current[0] = victim
                await asyncio.sleep(0.2)

        try:
            outcome = await drive_rollout(
                stack, fleet, fault=crash_and_restart, within=300
            )
        finally:
            await fleet.close()

        async def outbox_sent() -> bool:
            nonlocal crashes
            if not current[0].running:
                code = current[0].popen.returncode
                assert code == FAULT_EXIT, current[0].log_tail()
                crashes += 1  # the commit of the last events
                current[0] = await asyncio.to_thread(
                    stack.group.restart, current[0], wait=False
                )
            rows = await fetch(
                stack.db_url, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL"
            )
            return bool(rows[0]["n"] == 0)

        await wait_for(outbox_sent, within=120)
        rows = await fetch(
            stack.db_url,
            "SELECT message_id::text AS id, payload FROM outbox ORDER BY id",
        )
        expected = {
            r["id"]
            for r in rows
            if str(RolloutEvent.model_validate_json(r["payload"]).rollout_id)
            == outcome.rollout_id
        }

        async def all_received() -> bool:
            got = {
                i
                for i, req in receiver.unique().items()
                if str(RolloutEvent.model_validate_json(req.body).rollout_id)
                == outcome.rollout_id
            }
            return got == expected

        await wait_for(all_received, within=120)
        await receiver.close()

    unique = {i: req for i, req in receiver.unique().items() if i in expected}
    names = sorted(
        RolloutEvent.model_validate_json(r.body).event for r in unique.values()
    )
    bad_signatures = [
        r
        for r in receiver.requests
        if not verify(secret, r.headers, r.body, now=time.time(), tolerance=3600)
    ]
    figure(
        f"FAULT outbox-crash-after-commit: crashes={crashes} "
        f"broker_restarts={broker_restarts} events={len(expected)} "
        f"received_unique={len(unique)} requests={len(receiver.requests)} "
        f"bad_signatures={len(bad_signatures)} terminal={outcome.status}"
    )
    assert crashes >= 3, "the fault hook fired less than once per wave"
    assert broker_restarts == 1
    assert set(unique) == expected
    assert "started" in names
    assert "wave_started" in names
    assert names.count("started") == 1
    assert bad_signatures == []
    assert outcome.status == "completed"
