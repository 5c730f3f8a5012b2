"""The Roll back button: offered where the core allows it, a dialog that counts
the devices going back and offers the policies, and an action that publishes the
API's ``rollout.rollback`` command."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from tenacity import AsyncRetrying, stop_after_delay, wait_fixed

from tests.integration.api.support import make_tenant, mint
from tests.integration.ui.support import insert_devices, post_form, signed_in
from xdp47_common.adapters.amqp import connect
from xdp47_common.messages import COMMAND_ADAPTER, RollbackRollout
from xdp47_common.models import ALL_SCOPES, Scope
from xdp47_common.settings import ControlSettings
from xdp47_common.topology import Topology

pytestmark = pytest.mark.integration

TENANT_SCOPES = ALL_SCOPES - {Scope.TENANTS_WRITE}


async def _rolled_out(client: Any, pool: asyncpg.Pool[Any], tenant: str) -> str:
    """A completed rollout of 2.0.0 that two devices applied (from 1.1.0) and a
    third one failed; returns its id."""
    ids = []
    for version, sha in (("1.1.0", "a1" * 32), ("2.0.0", "b2" * 32)):
        created = await post_form(
            client,
            "/ui/artifacts",
            "/ui/artifacts",
            {"uri": f"https://x.example/{version}", "sha256": sha, "version": version},
        )
        ids.append(uuid.UUID(created.headers["location"].split("created=")[1]))
    old, new = ids
    rollout = await post_form(
        client,
        "/ui/rollouts",
        "/ui/rollouts",
        {"artifact_id": str(new), "waves": "1", "name": "to-undo"},
    )
    rid = uuid.UUID(rollout.headers["location"].rsplit("/", 1)[1])
    devices = {f"{tenant}-a": new, f"{tenant}-b": new, f"{tenant}-c": old}
    await insert_devices(pool, tenant, list(devices))
    for device, runs in devices.items():
        await pool.execute(
            "UPDATE devices SET current_artifact_id = $3 WHERE tenant = $1 AND id = $2",
            tenant,
            device,
            runs,
        )
        await pool.execute(
            "INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave, state, "
            "active, from_artifact_id) VALUES ($1, $2, $3, 1, $4, false, $5)",
            rid,
            tenant,
            device,
            "applied" if runs == new else "failed",
            old,
        )
    await pool.execute("UPDATE rollouts SET status = 'completed' WHERE id = $1", rid)
    return str(rid)


async def test_roll_back_from_the_rollout_page(
    pool: asyncpg.Pool[Any], ui_app: FastAPI, ui_settings: ControlSettings
) -> None:
    tenant = await make_tenant(pool, "rb")
    async with signed_in(ui_app, await mint(pool, tenant, TENANT_SCOPES)) as client:
        await post_form(
            client, "/ui/policies", "/ui/policies", {"name": "careful-back"}
        )
        rid = await _rolled_out(client, pool, tenant)
        page = (await client.get(f"/ui/rollouts/{rid}")).text
        assert 'data-action="rollback"' in page
        # Each device shows what it ran before: where a rollback sends it.
        assert page.count('data-from="1.1.0"') == 3
        dialog = (await client.get(f"/ui/rollouts/{rid}/rollback")).text
        assert 'data-affected="2"' in dialog
        assert "careful-back" in dialog
        sent = await post_form(
            client, f"/ui/rollouts/{rid}", f"/ui/rollouts/{rid}/rollback", {}
        )
        assert sent.status_code == 303, sent.text
        assert sent.headers["location"] == f"/ui/rollouts/{rid}?sent=rollback"
        shown = (await client.get(sent.headers["location"])).text
        assert "The rollback command was sent" in shown

    queue_name = Topology(ui_settings.amqp_namespace).commands_queue
    connection = await connect(ui_settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        seen: list[Any] = []
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(10), wait=wait_fixed(0.1), reraise=True
        ):
            with attempt:
                message = await queue.get(no_ack=True, fail=False)
                if message is not None:
                    seen.append(COMMAND_ADAPTER.validate_json(message.body))
                mine = [
                    c
                    for c in seen
                    if isinstance(c, RollbackRollout) and str(c.rollout_id) == rid
                ]
                assert mine
    assert mine[0].policy_id is None


async def test_no_button_without_write_and_409_with_nothing_to_undo(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "rb")
    async with signed_in(ui_app, await mint(pool, tenant, TENANT_SCOPES)) as client:
        rid = await _rolled_out(client, pool, tenant)
        await pool.execute(
            "UPDATE devices SET current_artifact_id = NULL WHERE tenant = $1", tenant
        )
        dialog = (await client.get(f"/ui/rollouts/{rid}/rollback")).text
        assert 'data-affected="0"' in dialog
        refused = await post_form(
            client, f"/ui/rollouts/{rid}", f"/ui/rollouts/{rid}/rollback", {}
        )
        assert refused.status_code == 409
        assert "nothing" in refused.text or "no device" in refused.text
    reader = await mint(pool, tenant, [Scope.ROLLOUTS_READ])
    async with signed_in(ui_app, reader) as client:
        page = (await client.get(f"/ui/rollouts/{rid}")).text
        assert 'data-action="rollback"' not in page
