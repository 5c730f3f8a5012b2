"""``POST /api/rollouts/{id}:rollback``: publishes ``rollout.rollback`` with the id
of the rollback rollout to create; 409 where the status or kind refuses it or no
device would go back; 404 for another tenant's rollout or policy; needs
``rollouts:write``."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.api.support import auth, make_tenant, mint
from tests.integration.api.test_rollout_commands import (
    _received,
    commands_queue,
)
from xdp47_common.models import ALL_SCOPES, Scope

pytestmark = pytest.mark.integration

__all__ = ["commands_queue"]  # the fixture, imported


async def _artifact(client, h, tenant: str, version: str) -> uuid.UUID:
    r = await client.post(
        "/api/artifacts",
        headers=h,
        json={
            "tenant": tenant,
            "uri": f"https://e.com/{version}",
            "sha256": uuid.uuid4().hex * 2,
            "version": version,
        },
    )
    assert r.status_code == 201, r.text
    return uuid.UUID(r.json()["id"])


async def _applied_rollout(
    client, pool, tenant: str, status: str = "completed", *, applied: int = 2
) -> tuple[dict[str, str], str, uuid.UUID, uuid.UUID]:
    """A rollout of 2.0.0 in ``status`` over three devices that ran 1.1.0; the
    first ``applied`` of them run 2.0.0 now. Returns (auth, id, v1, v2)."""
    h = auth(await mint(pool, tenant, ALL_SCOPES))
    v1 = await _artifact(client, h, tenant, "1.1.0")
    v2 = await _artifact(client, h, tenant, "2.0.0")
    r = await client.post(
        "/api/rollouts", headers=h, json={"tenant": tenant, "artifact_id": str(v2)}
    )
    rid = uuid.UUID(r.json()["id"])
    await pool.execute("UPDATE rollouts SET status = $1 WHERE id = $2", status, rid)
    for n in range(3):
        device = f"d{n}-{uuid.uuid4().hex[:6]}"
        runs = v2 if n < applied else v1
        await pool.execute(
            "INSERT INTO devices (tenant, id, current_artifact_id) VALUES ($1, $2, $3)",
            tenant,
            device,
            runs,
        )
        await pool.execute(
            "INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave, "
            "state, active, from_artifact_id) VALUES ($1, $2, $3, 1, $4, false, $5)",
            rid,
            tenant,
            device,
            "applied" if n < applied else "failed",
            v1,
        )
    return h, str(rid), v1, v2


@pytest.mark.parametrize("status", ["running", "failed", "partial", "completed"])
async def test_rollback_publishes_the_command(
    client, pool, tenant, commands_queue, status
):
    h, rid, _, _ = await _applied_rollout(client, pool, tenant, status)
    r = await client.post(f"/api/rollouts/{rid}:rollback", headers=h)
    assert r.status_code == 202, r.text
    answer = r.json()
    assert (answer["id"], answer["status"], answer["devices"]) == (rid, status, 2)
    [msg] = await _received(commands_queue, rid)
    assert msg["type"] == msg["_routing_key"] == "rollout.rollback"
    assert msg["rollback_id"] == answer["rollback_id"]
    assert msg["policy_id"] is None
    assert msg["requested_by"].startswith("token:")


async def test_rollback_under_a_policy_named_by_name_or_id(
    client, pool, tenant, commands_queue
):
    h, rid, _, _ = await _applied_rollout(client, pool, tenant)
    p = await client.post(
        "/api/policies",
        headers=h,
        json={"tenant": tenant, "name": "slow-back", "on_failure": "stop"},
    )
    assert p.status_code == 201, p.text
    assert p.json()["on_failure"] == "stop"
    for ref in ("slow-back", p.json()["id"]):
        r = await client.post(
            f"/api/rollouts/{rid}:rollback", headers=h, json={"policy": ref}
        )
        assert r.status_code == 202, r.text
    found = await _received(commands_queue, rid)
    assert [m["policy_id"] for m in found] == [p.json()["id"]] * 2


@pytest.mark.parametrize("status", ["draft", "aborted"])
async def test_a_status_that_refuses_is_409(client, pool, tenant, status):
    h, rid, _, _ = await _applied_rollout(client, pool, tenant, status)
    r = await client.post(f"/api/rollouts/{rid}:rollback", headers=h)
    assert r.status_code == 409
    assert f"a {status} rollout cannot be rolled back" in r.json()["detail"]


async def test_nothing_applied_is_409(client, pool, tenant):
    h, rid, _, _ = await _applied_rollout(client, pool, tenant, applied=0)
    r = await client.post(f"/api/rollouts/{rid}:rollback", headers=h)
    assert r.status_code == 409
    assert "no device applied" in r.json()["detail"]


async def test_devices_that_moved_on_are_not_counted(client, pool, tenant):
    """A device that applied 2.0.0 but runs something else now is left alone."""
    h, rid, v1, _ = await _applied_rollout(client, pool, tenant, applied=1)
    await pool.execute(
        "UPDATE devices SET current_artifact_id = $1 WHERE tenant = $2",
        v1,
        tenant,
    )
    r = await client.post(f"/api/rollouts/{rid}:rollback", headers=h)
    assert r.status_code == 409, r.text


async def test_a_rollback_rollout_is_409(client, pool, tenant):
    h, rid, _, _ = await _applied_rollout(client, pool, tenant)
    await pool.execute(
        "UPDATE rollouts SET kind = 'rollback', rollback_of = id WHERE id = $1",
        uuid.UUID(rid),
    )
    r = await client.post(f"/api/rollouts/{rid}:rollback", headers=h)
    assert r.status_code == 409
    assert "a rollback cannot be rolled back" in r.json()["detail"]
    got = await client.get(f"/api/rollouts/{rid}", headers=h)
    assert (got.json()["kind"], got.json()["rollback_of"]) == ("rollback", rid)


async def test_another_tenants_rollout_and_policy_are_404(client, pool, tenant):
    h, rid, _, _ = await _applied_rollout(client, pool, tenant)
    other = await make_tenant(pool)
    oh = auth(await mint(pool, other, ALL_SCOPES))
    r = await client.post(f"/api/rollouts/{rid}:rollback", headers=oh)
    assert r.status_code == 404
    p = await client.post(
        "/api/policies", headers=oh, json={"tenant": other, "name": "theirs"}
    )
    for ref in ("theirs", p.json()["id"]):
        r = await client.post(
            f"/api/rollouts/{rid}:rollback", headers=h, json={"policy": ref}
        )
        assert r.status_code == 404, r.text
        assert "policy" in r.json()["detail"]


async def test_rollback_needs_rollouts_write(client, pool, tenant):
    _, rid, _, _ = await _applied_rollout(client, pool, tenant)
    reader = auth(await mint(pool, tenant, [Scope.ROLLOUTS_READ]))
    r = await client.post(f"/api/rollouts/{rid}:rollback", headers=reader)
    assert r.status_code == 403


async def test_an_unknown_body_field_is_422(client, pool, tenant):
    h, rid, _, _ = await _applied_rollout(client, pool, tenant)
    r = await client.post(
        f"/api/rollouts/{rid}:rollback", headers=h, json={"polcy": "x"}
    )
    assert r.status_code == 422


async def test_a_nul_in_the_policy_is_422_not_500(client, pool, tenant):
    h, rid, _, _ = await _applied_rollout(client, pool, tenant)
    r = await client.post(
        f"/api/rollouts/{rid}:rollback", headers=h, json={"policy": "a\u0000b"}
    )
    assert r.status_code == 422, r.text
    assert "policy" in r.text


async def test_each_rollback_request_is_recorded_refused_too(
    client, pool, tenant, commands_queue
):
    h, rid, _, _ = await _applied_rollout(client, pool, tenant)
    _, draft, _, _ = await _applied_rollout(client, pool, tenant, "draft")
    assert (
        await client.post(f"/api/rollouts/{draft}:rollback", headers=h)
    ).status_code == 409
    r = await client.post(f"/api/rollouts/{rid}:rollback", headers=h)
    assert r.status_code == 202, r.text
    got = await client.get(
        "/api/audit",
        headers=h,
        params={"action": "rollout.rollback.requested", "order": "asc"},
    )
    assert got.status_code == 200, got.text
    records = [(x["subject_id"], x["outcome"], x["status_before"]) for x in got.json()]
    assert records == [(draft, "refused", "draft"), (rid, "accepted", "completed")]
    refused, accepted = got.json()
    assert refused["detail"]["status"] == 409
    assert accepted["detail"]["rollback_id"] == r.json()["rollback_id"]
    assert accepted["detail"]["message_id"]
