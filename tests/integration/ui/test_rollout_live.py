"""Rollout actions publish the API's commands; the page's progress, abort count and
the event fan-out reflect the database and the events exchange."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aio_pika
import asyncpg
import pytest
from fastapi import FastAPI
from tenacity import AsyncRetrying, stop_after_delay, wait_fixed

from tests.integration.api.support import make_tenant, mint
from tests.integration.ui.support import insert_devices, post_form, signed_in
from xdp47_common.adapters.amqp import connect, to_message
from xdp47_common.messages import COMMAND_ADAPTER, RolloutEvent
from xdp47_common.models import ALL_SCOPES, Scope
from xdp47_common.settings import ControlSettings
from xdp47_common.topology import Topology

pytestmark = pytest.mark.integration

SHA = "ef" * 32
TENANT_SCOPES = ALL_SCOPES - {Scope.TENANTS_WRITE}


async def _draft(client: Any, waves: int = 2) -> str:
    created = await post_form(
        client,
        "/ui/artifacts",
        "/ui/artifacts",
        {"uri": "https://x.example/a", "sha256": SHA, "version": "3.0.0"},
    )
    artifact_id = created.headers["location"].split("created=")[1]
    rollout = await post_form(
        client,
        "/ui/rollouts",
        "/ui/rollouts",
        {"artifact_id": artifact_id, "waves": str(waves), "name": "live"},
    )
    assert rollout.status_code == 303, rollout.text
    return str(rollout.headers["location"].rsplit("/", 1)[1])


async def _targets(
    pool: asyncpg.Pool[Any], tenant: str, rollout_id: str, states: dict[str, str]
) -> None:
    """Simulate the scheduler: running, wave 1, targets in the given states."""
    await insert_devices(pool, tenant, list(states))
    await pool.execute(
        "UPDATE rollouts SET status = 'running', current_wave = 1 WHERE id = $1",
        uuid.UUID(rollout_id),
    )
    await pool.executemany(
        "INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave, state) "
        "VALUES ($1, $2, $3, 1, $4)",
        [(uuid.UUID(rollout_id), tenant, d, s) for d, s in states.items()],
    )


async def test_start_publishes_the_apis_command(
    pool: asyncpg.Pool[Any], ui_app: FastAPI, ui_settings: ControlSettings
) -> None:
    tenant = await make_tenant(pool, "act")
    async with signed_in(ui_app, await mint(pool, tenant, TENANT_SCOPES)) as client:
        rollout_id = await _draft(client)
        started = await post_form(
            client, f"/ui/rollouts/{rollout_id}", f"/ui/rollouts/{rollout_id}/start", {}
        )
        assert started.status_code == 303
        assert started.headers["location"].endswith("?sent=start")
    queue_name = Topology(ui_settings.amqp_namespace).commands_queue
    connection = await connect(ui_settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        seen = []
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(10), wait=wait_fixed(0.1), reraise=True
        ):
            with attempt:
                message = await queue.get(no_ack=True, fail=False)
                if message is not None:
                    seen.append(COMMAND_ADAPTER.validate_json(message.body))
                assert any(
                    str(c.rollout_id) == rollout_id and c.type == "rollout.start"
                    for c in seen
                )


async def test_progress_and_abort_count_come_from_the_targets(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "prog")
    async with signed_in(ui_app, await mint(pool, tenant, TENANT_SCOPES)) as client:
        rollout_id = await _draft(client)
        states = {
            f"{tenant}-a": "applied",
            f"{tenant}-b": "applied",
            f"{tenant}-c": "failed",
            f"{tenant}-d": "assigned",
            f"{tenant}-e": "pending",
            f"{tenant}-f": "skipped",
        }
        await _targets(pool, tenant, rollout_id, states)
        live = (await client.get(f"/ui/rollouts/{rollout_id}/live")).text
        assert 'data-status="running"' in live
        # A pending target of the wave the rollout reached is told already
        # (read-time desired state): updating, like an assigned one.
        for word, n in {
            "succeeded": 2,
            "failed": 1,
            "updating": 2,
            "waiting": 0,
            "skipped": 1,
        }.items():
            assert f'data-{word}="{n}"' in live, word
        dialog = (await client.get(f"/ui/rollouts/{rollout_id}/abort")).text
        # Every device of the current wave that has not applied keeps its version.
        assert 'data-affected="4"' in dialog


async def test_events_reach_only_their_tenants_subscribers(
    pool: asyncpg.Pool[Any], ui_app: FastAPI, ui_settings: ControlSettings
) -> None:
    hub = ui_app.state.ui_events
    topology = Topology(ui_settings.amqp_namespace)
    rollout_id = uuid.uuid4()
    connection = await connect(ui_settings.amqp_url)
    async with (
        connection,
        hub.subscribe("hub-a", rollout_id) as mine,
        hub.subscribe("hub-b", rollout_id) as theirs,
    ):
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            topology.events, aio_pika.ExchangeType.TOPIC, durable=True
        )
        event = RolloutEvent(
            tenant="hub-a", rollout_id=rollout_id, event="wave_started", wave=1
        )
        await exchange.publish(
            to_message(event),
            routing_key=Topology.rollout_event_key("hub-a", event.event),
        )
        got = await asyncio.wait_for(mine.queue.get(), timeout=10)
        assert got.message_id == event.message_id
        assert theirs.queue.empty()


async def test_live_refresh_carries_the_header_and_hides_the_plan(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    """The live fragment (what the SSE stream sends) replaces the header's status,
    started and finished facts out of band, and the plan preview once started."""
    tenant = await make_tenant(pool, "head")
    async with signed_in(ui_app, await mint(pool, tenant, TENANT_SCOPES)) as client:
        rollout_id = await _draft(client)
        page = (await client.get(f"/ui/rollouts/{rollout_id}")).text
        assert '<dd id="rollout-header-status" data-status="draft">' in page
        assert '<section class="card" id="plan">' in page  # shown, a target
        draft = (await client.get(f"/ui/rollouts/{rollout_id}/live")).text
        assert (
            '<dd id="rollout-header-status" data-status="draft" hx-swap-oob="true">'
            in draft
        )
        assert 'id="plan"' not in draft  # a draft's preview stays as it is
        await _targets(pool, tenant, rollout_id, {f"{tenant}-a": "assigned"})
        await pool.execute(
            "UPDATE rollouts SET started_at = '2031-02-03 04:05:06+00' WHERE id = $1",
            uuid.UUID(rollout_id),
        )
        running = (await client.get(f"/ui/rollouts/{rollout_id}/live")).text
        assert (
            '<dd id="rollout-header-status" data-status="running" hx-swap-oob="true">'
            in running
        )
        assert (
            '<dd id="rollout-started" hx-swap-oob="true">2031-02-03 04:05:06 UTC</dd>'
            in running
        )
        assert '<dd id="rollout-finished" hx-swap-oob="true">—</dd>' in running
        assert '<section class="card" id="plan" hx-swap-oob="true" hidden>' in running
        await pool.execute(
            "UPDATE rollouts SET status = 'completed', "
            "finished_at = '2031-02-03 05:00:00+00' WHERE id = $1",
            uuid.UUID(rollout_id),
        )
        done = (await client.get(f"/ui/rollouts/{rollout_id}/live")).text
        assert 'data-status="completed" hx-swap-oob="true"' in done
        assert (
            '<dd id="rollout-finished" hx-swap-oob="true">2031-02-03 05:00:00 UTC</dd>'
            in done
        )
        page = (await client.get(f"/ui/rollouts/{rollout_id}")).text
        assert '<dd id="rollout-header-status" data-status="completed">' in page
        assert '<section class="card" id="plan" hidden>' in page
        assert "hx-swap-oob" not in page  # the page holds the targets only


async def test_a_page_that_sent_a_retry_stays_live(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    """Until the scheduler takes a retry up, the rollout still reads failed: the
    page the retry lands on keeps a stream open that follows the attempt (the
    page used to open none and showed attempt 1 until a manual reload)."""
    tenant = await make_tenant(pool, "follow")
    async with signed_in(ui_app, await mint(pool, tenant, TENANT_SCOPES)) as client:
        rollout_id = await _draft(client)
        await _targets(pool, tenant, rollout_id, {f"{tenant}-a": "failed"})
        await pool.execute(
            "UPDATE rollouts SET status = 'failed', attempt = 1 WHERE id = $1",
            uuid.UUID(rollout_id),
        )
        sent = (await client.get(f"/ui/rollouts/{rollout_id}?sent=retry")).text
        stream = f'sse-connect="/ui/rollouts/{rollout_id}/events?follow=failed:1"'
        assert stream in sent
        assert 'id="rollout-following"' in sent
        plain = (await client.get(f"/ui/rollouts/{rollout_id}")).text
        assert "sse-connect" not in plain


async def test_the_plan_shows_windows_and_the_progress_late_joiners(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    """A draft's plan preview shows each device's window in its zone; once
    running, the wave table counts late joiners and the device list marks them."""
    tenant = await make_tenant(pool, "win")
    async with signed_in(ui_app, await mint(pool, tenant, TENANT_SCOPES)) as client:
        rollout_id = await _draft(client, waves=1)
        await insert_devices(pool, tenant, [f"{tenant}-tokyo"])
        await pool.execute(
            "UPDATE devices SET timezone = 'Asia/Tokyo' WHERE tenant = $1", tenant
        )
        policy = uuid.uuid4()
        await pool.execute(
            "INSERT INTO policies (id, tenant, name, maintenance_windows) "
            "VALUES ($1, $2, 'windows', ARRAY['daily 01:00-02:00'])",
            policy,
            tenant,
        )
        await pool.execute(
            "UPDATE rollouts SET policy_id = $2 WHERE id = $1",
            uuid.UUID(rollout_id),
            policy,
        )
        page = (await client.get(f"/ui/rollouts/{rollout_id}")).text
        assert f'data-device="{tenant}-tokyo"' in page
        assert "data-window-open=" in page
        assert "Asia/Tokyo: window" in page

        await pool.execute("DELETE FROM devices WHERE tenant = $1", tenant)
        await _targets(
            pool,
            tenant,
            rollout_id,
            {f"{tenant}-a": "assigned", f"{tenant}-b": "pending"},
        )
        await pool.execute(
            "UPDATE rollout_targets SET late = true WHERE device_id = $1",
            f"{tenant}-b",
        )
        live = (await client.get(f"/ui/rollouts/{rollout_id}/live")).text
        assert '<td class="n-late" data-late="1"' in live
        page = (await client.get(f"/ui/rollouts/{rollout_id}")).text
        assert (
            f'data-device="{tenant}-b" data-wave="1" data-state="updating" data-late'
            in page
        )
        assert f'data-device="{tenant}-a" data-wave="1" data-state="updating">' in page
