"""Steering commands through the API: pause, resume, approve and promote publish
their command when the rollout's phase accepts it, answer 409 where it does not
(from the core's table), 403 to a four-eyes approval by the starter and to a
token without the scope, 404 for another tenant's rollout; the tenant setting
and the policy's approval gates are validated."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.api.support import auth, make_tenant, mint
from tests.integration.api.test_rollout_commands import (
    _received,
    _rollout,
    commands_queue,
)
from xdp47_common.models import ALL_SCOPES, Scope
from xdp47_common.tokens import hash_secret

pytestmark = pytest.mark.integration

__all__ = ["commands_queue"]  # the fixture, shared


async def _set(pool, rid: str, **columns: object) -> None:
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=2))
    await pool.execute(
        f"UPDATE rollouts SET {sets} WHERE id = $1",
        uuid.UUID(rid),
        *columns.values(),
    )


async def _running(pool, rid: str, hold: str | None = None, **more: object) -> None:
    await _set(
        pool,
        rid,
        status="running",
        attempt=1,
        current_wave=1,
        hold=hold,
        held_since=datetime.now(UTC) if hold else None,
        **more,
    )


@pytest.mark.parametrize(
    ("verb", "hold"),
    [
        ("pause", None),
        ("pause", "paused"),  # a repeat: harmless, as in the scheduler
        ("resume", "paused"),
        ("resume", None),
    ],
)
async def test_pause_and_resume_publish(
    client, pool, tenant, commands_queue, verb, hold
):
    h, rid = await _rollout(client, pool, tenant)
    await _running(pool, rid, hold)
    r = await client.post(f"/api/rollouts/{rid}:{verb}", headers=h)
    assert r.status_code == 202, r.text
    assert r.json()["hold"] == hold
    [msg] = await _received(commands_queue, rid)
    assert (msg["type"], msg["requested_by"][:6]) == (f"rollout.{verb}", "token:")


@pytest.mark.parametrize(
    ("verb", "status", "hold", "says"),
    [
        ("pause", "draft", None, "status 'draft'"),
        ("pause", "running", "awaiting_approval", "'running (awaiting_approval)'"),
        ("resume", "completed", None, "status 'completed'"),
        ("resume", "running", "awaiting_approval", "needs status running"),
        ("approve", "running", None, "needs status running (awaiting_approval)"),
        ("approve", "running", "paused", "'running (paused)'"),
        ("promote", "running", "paused", "'running (paused)'"),
        ("promote", "failed", None, "status 'failed'"),
    ],
)
async def test_a_phase_that_does_not_accept_the_command_is_409(
    client, pool, tenant, verb, status, hold, says
):
    h, rid = await _rollout(client, pool, tenant)
    if status == "running":
        await _running(pool, rid, hold)
    elif status != "draft":
        await _set(pool, rid, status=status)
    r = await client.post(f"/api/rollouts/{rid}:{verb}", headers=h)
    assert r.status_code == 409, r.text
    assert says in r.json()["detail"]


async def test_approve_needs_the_approve_scope_and_four_eyes_refuses_the_starter(
    client, pool, tenant, commands_queue
):
    _, rid = await _rollout(client, pool, tenant)
    starter = await mint(pool, tenant, {Scope.ROLLOUTS_WRITE, Scope.ROLLOUTS_APPROVE})
    starter_id = await pool.fetchval(
        "SELECT id FROM api_tokens WHERE token_hash = $1", hash_secret(starter)
    )
    await _running(pool, rid, "awaiting_approval", started_by=f"token:{starter_id}")

    writer = auth(await mint(pool, tenant, {Scope.ROLLOUTS_WRITE}))
    r = await client.post(f"/api/rollouts/{rid}:approve", headers=writer)
    assert r.status_code == 403
    assert "rollouts:approve" in r.json()["detail"]

    # Without four-eyes the starter may approve.
    r = await client.post(f"/api/rollouts/{rid}:approve", headers=auth(starter))
    assert r.status_code == 202, r.text
    [msg] = await _received(commands_queue, rid)
    assert msg["type"] == "rollout.approve"
    assert msg["requested_by"] == f"token:{starter_id}"

    await pool.execute(
        "UPDATE tenants SET four_eyes_approval = true WHERE id = $1", tenant
    )
    r = await client.post(f"/api/rollouts/{rid}:approve", headers=auth(starter))
    assert r.status_code == 403
    assert "four-eyes" in r.json()["detail"]
    assert "another token than the one that started" in r.json()["detail"]
    approver = auth(await mint(pool, tenant, {Scope.ROLLOUTS_APPROVE}))
    r = await client.post(f"/api/rollouts/{rid}:approve", headers=approver)
    assert r.status_code == 202, r.text
    [msg] = await _received(commands_queue, rid)
    assert msg["requested_by"] != f"token:{starter_id}"


async def test_promote_needs_a_wave_in_its_grace(client, pool, tenant, commands_queue):
    h, rid = await _rollout(client, pool, tenant)
    policy = {
        "require_ok": True,
        "skip_offline": True,
        "grace_seconds": 600,
        "min_success_ratio": 1.0,
        "max_failures_per_wave": 0,
        "abort_on_zero_eligible": True,
        "wave_deadline_seconds": 900,
    }
    now = datetime.now(UTC)
    await _running(pool, rid, current_wave_started_at=now - timedelta(seconds=10))
    await pool.execute(
        "UPDATE rollouts SET effective_policy = $2::text::jsonb WHERE id = $1",
        uuid.UUID(rid),
        json.dumps(policy),
    )
    r = await client.post(f"/api/rollouts/{rid}:promote", headers=h)
    assert r.status_code == 202, r.text
    [msg] = await _received(commands_queue, rid)
    assert msg["type"] == "rollout.promote"

    await _set(pool, rid, grace_skipped=True)
    r = await client.post(f"/api/rollouts/{rid}:promote", headers=h)
    assert r.status_code == 409
    assert "promoted already" in r.json()["detail"]

    await _set(
        pool,
        rid,
        grace_skipped=False,
        current_wave_started_at=now - timedelta(seconds=700),
    )
    r = await client.post(f"/api/rollouts/{rid}:promote", headers=h)
    assert r.status_code == 409
    assert "nothing to promote: wave 1 is not in its grace" in r.json()["detail"]


async def test_another_tenants_rollout_is_404(client, pool, tenant):
    _, rid = await _rollout(client, pool, tenant)
    await _running(pool, rid, "awaiting_approval")
    other = await make_tenant(pool, "b")
    h = auth(await mint(pool, other, ALL_SCOPES))
    for verb in ("pause", "resume", "approve", "promote"):
        r = await client.post(f"/api/rollouts/{rid}:{verb}", headers=h)
        assert r.status_code == 404, (verb, r.text)


async def test_the_rollout_answer_shows_the_hold(client, pool, tenant):
    h, rid = await _rollout(client, pool, tenant)
    await _running(pool, rid, "paused")
    body = (await client.get(f"/api/rollouts/{rid}", headers=h)).json()
    assert (body["status"], body["hold"]) == ("running", "paused")
    assert body["held_since"] is not None
    listed = (await client.get("/api/rollouts", headers=h)).json()
    assert [r["hold"] for r in listed if r["id"] == rid] == ["paused"]
    _, moving = await _rollout(client, pool, tenant)
    await _running(pool, moving)
    paused = (await client.get("/api/rollouts?hold=paused", headers=h)).json()
    assert [r["id"] for r in paused] == [rid]
    waiting = "/api/rollouts?hold=awaiting_approval"
    assert (await client.get(waiting, headers=h)).json() == []
    bad = await client.get("/api/rollouts?hold=sleeping", headers=h)
    assert bad.status_code == 422
    progress = (await client.get(f"/api/rollouts/{rid}/progress", headers=h)).json()
    assert progress["hold"] == "paused"


async def test_four_eyes_is_a_platform_operators_tenant_setting(client, pool, tenant):
    own = auth(await mint(pool, tenant, ALL_SCOPES - {Scope.TENANTS_WRITE}))
    r = await client.patch(
        f"/api/tenants/{tenant}", headers=own, json={"four_eyes_approval": True}
    )
    assert r.status_code == 403
    operator = auth(await mint(pool, tenant, {Scope.TENANTS_WRITE}))
    r = await client.patch(
        f"/api/tenants/{tenant}", headers=operator, json={"four_eyes_approval": True}
    )
    assert r.status_code == 200, r.text
    assert r.json()["four_eyes_approval"] is True
    r = await client.patch(f"/api/tenants/{tenant}", headers=operator, json={})
    assert r.json()["four_eyes_approval"] is True  # left out: unchanged
    r = await client.patch(
        f"/api/tenants/{tenant}", headers=operator, json={"four_eyes_approval": "yes"}
    )
    assert r.status_code == 422
    r = await client.patch(
        "/api/tenants/no-such-tenant", headers=operator, json={"four_eyes": True}
    )
    assert r.status_code == 422  # an unknown field
    r = await client.patch(
        "/api/tenants/no-such-tenant",
        headers=operator,
        json={"four_eyes_approval": True},
    )
    assert r.status_code == 404


async def test_approval_gates_are_validated_against_the_waves(client, pool, tenant):
    h = auth(await mint(pool, tenant, ALL_SCOPES))
    bad = await client.post(
        "/api/policies",
        headers=h,
        json={"tenant": tenant, "name": "one", "approval_before_waves": [1]},
    )
    assert bad.status_code == 422
    twice = await client.post(
        "/api/policies",
        headers=h,
        json={"tenant": tenant, "name": "two", "approval_before_waves": [3, 3]},
    )
    assert twice.status_code == 422
    assert "twice" in twice.text
    pol = await client.post(
        "/api/policies",
        headers=h,
        json={"tenant": tenant, "name": "gated", "approval_before_waves": [3, 2]},
    )
    assert pol.status_code == 201, pol.text
    assert pol.json()["approval_before_waves"] == [2, 3]
    art = await client.post(
        "/api/artifacts",
        headers=h,
        json={"tenant": tenant, "uri": "https://e.com/a", "sha256": "3" * 64},
    )
    body = {
        "tenant": tenant,
        "artifact_id": art.json()["id"],
        "policy_id": pol.json()["id"],
    }
    r = await client.post("/api/rollouts", headers=h, json={**body, "waves": 2})
    assert r.status_code == 422
    assert "approval before wave 3, but the rollout has 2 waves" in r.text
    r = await client.post("/api/rollouts", headers=h, json={**body, "waves": 3})
    assert r.status_code == 201, r.text
