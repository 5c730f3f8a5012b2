"""The scope matrix: every operation of the OpenAPI document by token kinds (none,
no scope, each single scope, all scopes, a device credential). An operation missing
from ``REQUIRED`` fails the test, so a new route cannot ship without a declared
scope. A device credential opens only the operations in ``DEVICE_ALLOWED`` (and
the public ones); everywhere else it is refused like a malformed token (401)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.integration.api.support import auth, mint
from xdp47_common.models import ALL_SCOPES, Scope, expand_scopes

pytestmark = pytest.mark.integration

PUBLIC = None
REQUIRED: dict[tuple[str, str], Scope | None] = {
    ("GET", "/api/devices"): Scope.DEVICES_READ,
    ("GET", "/api/devices/{device_id}"): Scope.DEVICES_READ,
    ("POST", "/api/devices/claim"): Scope.DEVICES_CLAIM,
    ("GET", "/api/devices:count"): Scope.DEVICES_READ,
    ("GET", "/api/groups"): Scope.DEVICES_READ,
    ("POST", "/api/groups"): Scope.DEVICES_WRITE,
    ("GET", "/api/groups/{group_id}"): Scope.DEVICES_READ,
    ("PATCH", "/api/groups/{group_id}"): Scope.DEVICES_WRITE,
    ("DELETE", "/api/groups/{group_id}"): Scope.DEVICES_WRITE,
    ("GET", "/api/groups/{group_id}/devices"): Scope.DEVICES_READ,
    ("GET", "/api/artifacts"): Scope.ARTIFACTS_READ,
    ("POST", "/api/artifacts"): Scope.ARTIFACTS_WRITE,
    ("GET", "/api/artifacts/{artifact_id}"): Scope.ARTIFACTS_READ,
    ("POST", "/api/artifacts/upload"): Scope.ARTIFACTS_WRITE,
    ("GET", "/api/artifacts/{artifact_id}/content"): Scope.ARTIFACTS_READ,
    ("DELETE", "/api/artifacts/{artifact_id}"): Scope.ARTIFACTS_WRITE,
    ("GET", "/api/policies"): Scope.POLICIES_READ,
    ("POST", "/api/policies"): Scope.POLICIES_WRITE,
    ("GET", "/api/policies/{policy_id}"): Scope.POLICIES_READ,
    ("GET", "/api/rollouts"): Scope.ROLLOUTS_READ,
    ("POST", "/api/rollouts"): Scope.ROLLOUTS_WRITE,
    ("GET", "/api/rollouts/{rollout_id}"): Scope.ROLLOUTS_READ,
    ("GET", "/api/rollouts/{rollout_id}/runs"): Scope.ROLLOUTS_READ,
    ("GET", "/api/rollouts/{rollout_id}/plan"): Scope.ROLLOUTS_READ,
    ("GET", "/api/rollouts/{rollout_id}/progress"): Scope.ROLLOUTS_READ,
    ("GET", "/api/rollouts/{rollout_id}/analysis"): Scope.ROLLOUTS_READ,
    ("GET", "/api/rollouts/{rollout_id}/devices"): Scope.ROLLOUTS_READ,
    ("POST", "/api/rollouts/{rollout_id}:start"): Scope.ROLLOUTS_WRITE,
    ("POST", "/api/rollouts/{rollout_id}:retry"): Scope.ROLLOUTS_WRITE,
    ("POST", "/api/rollouts/{rollout_id}:abort"): Scope.ROLLOUTS_WRITE,
    ("POST", "/api/rollouts/{rollout_id}:rollback"): Scope.ROLLOUTS_WRITE,
    ("POST", "/api/rollouts/{rollout_id}:pause"): Scope.ROLLOUTS_WRITE,
    ("POST", "/api/rollouts/{rollout_id}:resume"): Scope.ROLLOUTS_WRITE,
    ("POST", "/api/rollouts/{rollout_id}:promote"): Scope.ROLLOUTS_WRITE,
    ("POST", "/api/rollouts/{rollout_id}:approve"): Scope.ROLLOUTS_APPROVE,
    ("GET", "/api/tenants"): Scope.TENANTS_READ,
    ("POST", "/api/tenants"): Scope.TENANTS_WRITE,
    ("PATCH", "/api/tenants/{tenant_id}"): Scope.TENANTS_WRITE,
    ("GET", "/api/tokens"): Scope.TOKENS_READ,
    ("POST", "/api/tokens"): Scope.TOKENS_WRITE,
    ("GET", "/api/tokens/{token_id}"): Scope.TOKENS_READ,
    ("POST", "/api/tokens/{token_id}:revoke"): Scope.TOKENS_WRITE,
    ("DELETE", "/api/tokens/{token_id}"): Scope.TOKENS_WRITE,
    ("GET", "/api/audit"): Scope.AUDIT_READ,
    ("GET", "/api/webhooks"): Scope.WEBHOOKS_READ,
    ("POST", "/api/webhooks"): Scope.WEBHOOKS_WRITE,
    ("GET", "/api/webhooks/{webhook_id}"): Scope.WEBHOOKS_READ,
    ("GET", "/api/webhooks/{webhook_id}/deliveries"): Scope.WEBHOOKS_READ,
    ("POST", "/api/webhooks/{webhook_id}/deliveries/{delivery_id}:redeliver"): (
        Scope.WEBHOOKS_WRITE
    ),
    # After every other webhook route: the first authorised caller deletes it.
    ("DELETE", "/api/webhooks/{webhook_id}"): Scope.WEBHOOKS_WRITE,
    ("GET", "/livez"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
}

# Operations a device credential (xdp47d_…) of the tenant may call.
DEVICE_ALLOWED = {("GET", "/api/artifacts/{artifact_id}/content")}


def _operations(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in openapi["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


async def test_every_operation_has_a_row(client):
    ops = _operations((await client.get("/openapi.json")).json())
    assert set(ops) == set(REQUIRED), "update REQUIRED for new or removed routes"


async def test_operations_declare_bearer_security_and_errors(client):
    doc = (await client.get("/openapi.json")).json()
    for method, path in _operations(doc):
        op = doc["paths"][path][method.lower()]
        if REQUIRED[(method, path)] is None:
            assert "security" not in op, path
            continue
        # OpenAPI 3.1 lets a bearer requirement list the roles (here: the scope).
        needed = REQUIRED[(method, path)]
        assert needed is not None
        expected = [{"bearer": [needed.value]}]
        assert op["security"] == expected, (method, path)
        assert {"401", "403", "422", "503"} <= set(op["responses"]), (method, path)


@pytest.fixture
async def fixtures(client, pool, tenant):
    """One resource of each kind in ``tenant``; the rollout is finished, so the
    action routes answer 409 to an authorised caller and publish nothing, and the
    device keeps the artifact, so its DELETE answers 409."""
    admin = await mint(pool, tenant, ALL_SCOPES)
    h = auth(admin)
    claim = await client.post(
        "/api/devices/claim", headers=h, json={"tenant": tenant, "device_id": "m1"}
    )
    # Uploaded, so that its content route answers 200 to an authorised caller.
    art = await client.post(
        "/api/artifacts/upload",
        headers={**h, "Content-Type": "application/octet-stream"},
        params={"tenant": tenant},
        content=b"matrix artifact",
    )
    assert art.status_code == 201, art.text
    pol = await client.post(
        "/api/policies", headers=h, json={"tenant": tenant, "name": "p"}
    )
    # Targeted by the rollout, so its DELETE answers 409 to an authorised caller.
    group = await client.post(
        "/api/groups",
        headers=h,
        json={"tenant": tenant, "name": "g", "selector": "model in (k2,k3)"},
    )
    assert group.status_code == 201, group.text
    ro = await client.post(
        "/api/rollouts",
        headers=h,
        json={
            "tenant": tenant,
            "artifact_id": art.json()["id"],
            "group_id": group.json()["id"],
        },
    )
    await pool.execute(
        "UPDATE rollouts SET status = 'completed' WHERE id = $1",
        uuid.UUID(ro.json()["id"]),
    )
    # Kept on the artifact, so its DELETE answers 409 to an authorised caller
    # and the artifact stays for the rows after it.
    await pool.execute(
        "UPDATE devices SET desired_artifact_id = $1 WHERE tenant = $2 AND id = 'm1'",
        uuid.UUID(art.json()["id"]),
        tenant,
    )
    victim = await client.post(
        "/api/tokens", headers=h, json={"name": "victim", "scopes": ["devices:read"]}
    )
    # A literal public address: created without DNS, never delivered to here.
    hook = await client.post(
        "/api/webhooks", headers=h, json={"url": "https://93.184.216.34/matrix"}
    )
    assert hook.status_code == 201, hook.text
    delivery_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO webhook_deliveries (id, webhook_id, tenant, event_id, event, "
        "payload, status) VALUES ($1, $2, $3, $4, 'completed', '{}', 'pending')",
        delivery_id,
        uuid.UUID(hook.json()["id"]),
        tenant,
        uuid.uuid4(),
    )
    return {
        "credential": claim.json()["credential"],
        "device_id": "m1",
        "artifact_id": art.json()["id"],
        "policy_id": pol.json()["id"],
        "rollout_id": ro.json()["id"],
        "token_id": victim.json()["id"],
        "group_id": group.json()["id"],
        "tenant_id": tenant,
        "webhook_id": hook.json()["id"],
        "delivery_id": str(delivery_id),
    }


async def test_scope_matrix(client, pool, tenant, fixtures):
    kinds: dict[str, str | None] = {"no token": None}
    kinds["no scope"] = await mint(pool, tenant, [])
    for scope in Scope:
        kinds[scope.value] = await mint(pool, tenant, {scope})
    kinds["all scopes"] = await mint(pool, tenant, ALL_SCOPES)
    kinds["device"] = fixtures["credential"]
    held = {
        "no token": frozenset(),
        "no scope": frozenset(),
        "all scopes": ALL_SCOPES,
        "device": frozenset(),
        **{s.value: expand_scopes({s}) for s in Scope},
    }
    failures = []
    for (method, template), needed in REQUIRED.items():
        path = template.format(**fixtures)
        for kind, token in kinds.items():
            headers = auth(token) if token else {}
            kwargs: dict[str, Any] = {"json": {}} if method == "POST" and needed else {}
            r = await client.request(method, path, headers=headers, **kwargs)
            if needed is None:
                ok = r.status_code == 200
            elif kind == "device":
                allowed = (method, template) in DEVICE_ALLOWED
                ok = r.status_code == 200 if allowed else r.status_code == 401
            elif token is None:
                ok = r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
            elif needed not in held[kind]:
                ok = r.status_code == 403 and needed.value in r.json()["detail"]
            elif method == "GET":
                ok = r.status_code == 200
            elif (method, template) == ("DELETE", "/api/webhooks/{webhook_id}"):
                # The first authorised caller deletes it; later ones find none.
                ok = r.status_code in (204, 404)
            else:
                ok = r.status_code not in (401, 403, 404, 500)
            if not ok:
                failures.append((method, template, kind, r.status_code, r.text[:120]))
    assert failures == []
