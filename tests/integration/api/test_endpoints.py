"""Every endpoint: the happy path, and bad input answered with a 4xx naming the
field (unknown fields included)."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.api.support import auth, make_tenant, mint
from xdp47_common.models import ALL_SCOPES, Scope

pytestmark = pytest.mark.integration

SHA = "ab" * 32


@pytest.fixture
async def token(pool, tenant):
    return await mint(pool, tenant, ALL_SCOPES)


async def _artifact(client, token, tenant, **extra):
    body = {"tenant": tenant, "uri": "https://example.com/a.tar", "sha256": SHA}
    r = await client.post("/api/artifacts", headers=auth(token), json=body | extra)
    assert r.status_code == 201, r.text
    return r.json()


async def test_devices_claim_list_get_and_reclaim(client, pool, tenant, token):
    h = auth(token)
    body = {"tenant": tenant, "device_id": "kiosk-1", "labels": {"site": "berlin"}}
    first = await client.post("/api/devices/claim", headers=h, json=body)
    assert first.status_code == 201, first.text
    assert first.json()["device_id"] == "kiosk-1"
    assert first.json()["credential"].startswith("xdp47d_")

    again = await client.post(
        "/api/devices/claim",
        headers=h,
        json=body | {"labels": {"site": "paris"}, "channel": "beta"},
    )
    assert again.status_code == 200
    assert again.json()["device_id"] == "kiosk-1"
    assert again.json()["credential"] != first.json()["credential"]

    generated = await client.post(
        "/api/devices/claim", headers=h, json={"tenant": tenant}
    )
    assert generated.status_code == 201

    one = await client.get("/api/devices/kiosk-1", headers=h)
    assert one.status_code == 200
    assert one.json()["labels"] == {"site": "paris"}
    assert one.json()["channel"] == "beta"
    assert one.json()["desired_version"] is None

    all_ = await client.get("/api/devices", headers=h)
    assert {d["id"] for d in all_.json()} == {"kiosk-1", generated.json()["device_id"]}
    by_label = await client.get(
        "/api/devices", headers=h, params={"label": "site=paris"}
    )
    assert [d["id"] for d in by_label.json()] == ["kiosk-1"]
    by_channel = await client.get("/api/devices?channel=stable", headers=h)
    assert [d["id"] for d in by_channel.json()] == [generated.json()["device_id"]]
    by_prefix = await client.get("/api/devices?q=kio", headers=h)
    assert [d["id"] for d in by_prefix.json()] == ["kiosk-1"]
    by_status = await client.get("/api/devices?status=online", headers=h)
    assert by_status.json() == []


async def test_device_desired_version_is_joined_from_artifacts(
    client, pool, tenant, token
):
    art = await _artifact(client, token, tenant, version="2.0.0")
    await client.post(
        "/api/devices/claim",
        headers=auth(token),
        json={"tenant": tenant, "device_id": "d1"},
    )
    await pool.execute(
        "UPDATE devices SET desired_artifact_id = $1, current_version = '1.0' "
        "WHERE tenant = $2 AND id = 'd1'",
        uuid.UUID(art["id"]),
        tenant,
    )
    r = await client.get("/api/devices/d1", headers=auth(token))
    assert r.json()["desired_version"] == "2.0.0"
    by_version = await client.get("/api/devices?version=1.0", headers=auth(token))
    assert [d["id"] for d in by_version.json()] == ["d1"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("label=no%20key", "query.label"),
        ("status=sleeping", "query.status"),
        ("limit=0", "query.limit"),
        ("limit=1001", "query.limit"),
        ("cursor=!!notacursor", "query.cursor"),
    ],
)
async def test_device_list_bad_query(client, token, query, field):
    r = await client.get(f"/api/devices?{query}", headers=auth(token))
    assert r.status_code == 422
    assert field in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"labels": {"bad key": "x"}}, "body.labels"),
        ({"device_id": "has space"}, "body.device_id"),
        ({"channel": "UPPER"}, "body.channel"),
        ({"colour": "red"}, "body.colour: unknown field"),
    ],
)
async def test_claim_bad_body(client, tenant, token, body, field):
    r = await client.post(
        "/api/devices/claim", headers=auth(token), json={"tenant": tenant} | body
    )
    assert r.status_code == 422
    assert field in r.json()["detail"]


async def test_claim_missing_tenant_names_it(client, token):
    r = await client.post("/api/devices/claim", headers=auth(token), json={})
    assert r.status_code == 422
    assert "body.tenant" in r.json()["detail"]


async def test_get_missing_device_is_404(client, token):
    r = await client.get("/api/devices/nope", headers=auth(token))
    assert r.status_code == 404
    assert r.json() == {"detail": "device 'nope' not found"}


async def test_artifacts(client, tenant, token):
    art = await _artifact(client, token, tenant, version="1.2.3", type="firmware")
    assert art["sha256"] == SHA
    r = await client.get(f"/api/artifacts/{art['id']}", headers=auth(token))
    assert r.json() == art
    listed = await client.get("/api/artifacts?version=1.2.3", headers=auth(token))
    assert [a["id"] for a in listed.json()] == [art["id"]]
    none = await client.get("/api/artifacts?type=application", headers=auth(token))
    assert none.json() == []
    missing = await client.get(f"/api/artifacts/{uuid.uuid4()}", headers=auth(token))
    assert missing.status_code == 404
    bad_id = await client.get("/api/artifacts/not-a-uuid", headers=auth(token))
    assert bad_id.status_code == 422
    assert "path.artifact_id" in bad_id.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sha256": "xyz"}, "body.sha256"),
        ({"uri": "ftp://example.com/a"}, "body.uri"),
        ({"size": -1}, "body.size"),
        ({"extra": 1}, "body.extra: unknown field"),
    ],
)
async def test_artifact_bad_body(client, tenant, token, body, field):
    base = {"tenant": tenant, "uri": "https://example.com/a", "sha256": SHA}
    r = await client.post("/api/artifacts", headers=auth(token), json=base | body)
    assert r.status_code == 422
    assert field in r.json()["detail"]


async def test_policies(client, tenant, token):
    body = {"tenant": tenant, "name": "careful", "min_success_ratio": 0.9}
    r = await client.post("/api/policies", headers=auth(token), json=body)
    assert r.status_code == 201, r.text
    policy = r.json()
    assert policy["min_success_ratio"] == 0.9
    assert policy["grace_seconds"] is None
    got = await client.get(f"/api/policies/{policy['id']}", headers=auth(token))
    assert got.json() == policy
    listed = await client.get("/api/policies", headers=auth(token))
    assert [p["id"] for p in listed.json()] == [policy["id"]]
    bad = await client.post(
        "/api/policies", headers=auth(token), json=body | {"min_success_ratio": 2}
    )
    assert bad.status_code == 422
    assert "body.min_success_ratio" in bad.json()["detail"]
    missing = await client.get(f"/api/policies/{uuid.uuid4()}", headers=auth(token))
    assert missing.status_code == 404


async def test_a_policy_keeps_its_retry_fields(client, tenant, token):
    body = {
        "tenant": tenant,
        "name": "patient",
        "max_device_retries": 3,
        "retry_backoff_seconds": 10,
        "retry_backoff_max_seconds": 60,
    }
    r = await client.post("/api/policies", headers=auth(token), json=body)
    assert r.status_code == 201, r.text
    policy = r.json()
    assert (
        policy["max_device_retries"],
        policy["retry_backoff_seconds"],
        policy["retry_backoff_max_seconds"],
    ) == (3, 10, 60)
    got = await client.get(f"/api/policies/{policy['id']}", headers=auth(token))
    assert got.json() == policy
    for bad, field in (
        ({"max_device_retries": 11}, "max_device_retries"),
        ({"retry_backoff_seconds": -1}, "retry_backoff_seconds"),
        ({"retry_backoff_max_seconds": 5}, "retry_backoff_max_seconds"),
    ):
        r = await client.post(
            "/api/policies", headers=auth(token), json=body | {"name": "x"} | bad
        )
        assert r.status_code == 422, r.text
        assert f"body.{field}" in r.json()["detail"]


async def test_a_policy_name_is_unique_in_its_tenant_only(client, pool, tenant, token):
    body = {"tenant": tenant, "name": "careful"}
    assert (
        await client.post("/api/policies", headers=auth(token), json=body)
    ).status_code == 201
    again = await client.post(
        "/api/policies", headers=auth(token), json=body | {"grace_seconds": 5}
    )
    assert again.status_code == 409
    assert again.json()["detail"] == (
        "name: a policy named 'careful' already exists in this tenant"
    )
    listed = await client.get("/api/policies", headers=auth(token))
    assert [p["name"] for p in listed.json()] == ["careful"]
    other = await make_tenant(pool, "b")
    other_token = await mint(pool, other, [Scope.POLICIES_WRITE])
    elsewhere = await client.post(
        "/api/policies",
        headers=auth(other_token),
        json={"tenant": other, "name": "careful"},
    )
    assert elsewhere.status_code == 201, elsewhere.text


async def test_rollouts_create_get_list_runs(client, pool, tenant, token):
    art = await _artifact(client, token, tenant)
    pol = (
        await client.post(
            "/api/policies", headers=auth(token), json={"tenant": tenant, "name": "p"}
        )
    ).json()
    body = {
        "tenant": tenant,
        "artifact_id": art["id"],
        "policy_id": pol["id"],
        "selector": {"site": "berlin"},
        "wave_percentages": [10, 90],
    }
    r = await client.post("/api/rollouts", headers=auth(token), json=body)
    assert r.status_code == 201, r.text
    rollout = r.json()
    assert rollout["status"] == "draft"
    assert rollout["waves"] == 2
    got = await client.get(f"/api/rollouts/{rollout['id']}", headers=auth(token))
    assert got.json() == rollout
    listed = await client.get("/api/rollouts?status=draft", headers=auth(token))
    assert [x["id"] for x in listed.json()] == [rollout["id"]]
    assert (
        await client.get("/api/rollouts?status=running", headers=auth(token))
    ).json() == []

    rid = uuid.UUID(rollout["id"])
    for attempt, wave in [(2, 1), (1, 2), (1, 1)]:
        await pool.execute(
            "INSERT INTO rollout_runs (rollout_id, wave, attempt, eligible) "
            "VALUES ($1, $2, $3, 5)",
            rid,
            wave,
            attempt,
        )
    runs = await client.get(f"/api/rollouts/{rid}/runs?limit=2", headers=auth(token))
    assert [(x["attempt"], x["wave"]) for x in runs.json()] == [(1, 1), (1, 2)]
    nxt = await client.get(
        f"/api/rollouts/{rid}/runs",
        headers=auth(token),
        params={"limit": 2, "cursor": runs.headers["X-Next-Cursor"]},
    )
    assert [(x["attempt"], x["wave"]) for x in nxt.json()] == [(2, 1)]
    assert "X-Next-Cursor" not in nxt.headers
    missing = await client.get(
        f"/api/rollouts/{uuid.uuid4()}/runs", headers=auth(token)
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"artifact_id": str(uuid.uuid4())}, "body.artifact_id"),
        ({"policy_id": str(uuid.uuid4())}, "body.policy_id"),
        ({"waves": 0}, "body.waves"),
        ({"wave_percentages": [50, 40]}, "body.wave_percentages"),
        ({"selector": {"k": "a,b"}}, "body.selector"),
        ({"speed": "fast"}, "body.speed: unknown field"),
    ],
)
async def test_rollout_bad_body(client, tenant, token, change, field):
    art = await _artifact(client, token, tenant)
    body = {"tenant": tenant, "artifact_id": art["id"]} | change
    r = await client.post("/api/rollouts", headers=auth(token), json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"]


async def test_rollout_refuses_another_tenants_artifact(client, pool, tenant, token):
    other = await make_tenant(pool, "b")
    other_token = await mint(pool, other, ALL_SCOPES)
    art = await _artifact(client, other_token, other)
    r = await client.post(
        "/api/rollouts",
        headers=auth(token),
        json={"tenant": tenant, "artifact_id": art["id"]},
    )
    assert r.status_code == 422
    assert "body.artifact_id" in r.json()["detail"]


async def test_tenants(client, pool, tenant):
    reader = await mint(pool, tenant, {Scope.TENANTS_READ})
    own = await client.get("/api/tenants", headers=auth(reader))
    assert [t["id"] for t in own.json()] == [tenant]

    operator = await mint(pool, tenant, {Scope.TENANTS_WRITE})
    new_id = f"n-{uuid.uuid4().hex[:8]}"
    r = await client.post(
        "/api/tenants", headers=auth(operator), json={"id": new_id, "name": "New"}
    )
    assert r.status_code == 201
    assert r.json()["name"] == "New"
    dup = await client.post("/api/tenants", headers=auth(operator), json={"id": new_id})
    assert dup.status_code == 409
    bad = await client.post("/api/tenants", headers=auth(operator), json={"id": "Bad!"})
    assert bad.status_code == 422
    assert "body.id" in bad.json()["detail"]
    everyone = await client.get("/api/tenants?limit=1000", headers=auth(operator))
    assert {tenant, new_id} <= {t["id"] for t in everyone.json()}


async def test_tenant_list_pages_with_link_header(client, pool, tenant):
    operator = await mint(pool, tenant, {Scope.TENANTS_WRITE})
    for _ in range(3):
        await make_tenant(pool, "p")
    seen: list[str] = []
    url: str | None = "/api/tenants?limit=2"
    while url is not None:
        r = await client.get(url, headers=auth(operator))
        page = [t["id"] for t in r.json()]
        assert len(page) <= 2
        seen.extend(page)
        link = r.headers.get("Link")
        url = link.split(">")[0].lstrip("<") if link else None
        if url:
            assert 'rel="next"' in link
            assert r.headers["X-Next-Cursor"] in url
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) >= 4


async def test_tokens(client, pool, tenant, token):
    r = await client.post(
        "/api/tokens",
        headers=auth(token),
        json={"name": "ci", "scopes": ["rollouts:write"], "expires_in_days": 7},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["token"].startswith("xdp47t_")
    assert created["tenant"] == tenant
    assert created["prefix"] == created["token"][: len(created["prefix"])]
    listed = await client.get("/api/tokens", headers=auth(token))
    assert created["id"] in {t["id"] for t in listed.json()}
    assert all("token" not in t for t in listed.json())
    got = await client.get(f"/api/tokens/{created['id']}", headers=auth(token))
    assert got.json()["scopes"] == ["rollouts:write"]
    assert "token" not in got.json()

    works = await client.get("/api/rollouts", headers=auth(created["token"]))
    assert works.status_code == 200
    revoked = await client.post(
        f"/api/tokens/{created['id']}:revoke", headers=auth(token)
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    again = await client.delete(f"/api/tokens/{created['id']}", headers=auth(token))
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    refused = await client.get("/api/rollouts", headers=auth(created["token"]))
    assert refused.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": ["fly:high"]}, "body.scopes"),
        ({"name": "x", "scopes": []}, "body.scopes"),
        ({"name": "", "scopes": ["devices:read"]}, "body.name"),
        (
            {"name": "x", "scopes": ["devices:read"], "expires_in_days": 0},
            "body.expires_in_days",
        ),
        (
            {"name": "x", "scopes": ["devices:read"], "admin": True},
            "body.admin: unknown field",
        ),
    ],
)
async def test_token_bad_body(client, token, body, field):
    r = await client.post("/api/tokens", headers=auth(token), json=body)
    assert r.status_code == 422
    assert field in r.json()["detail"]


async def test_token_cannot_mint_scopes_it_lacks(client, pool, tenant):
    minter = await mint(pool, tenant, {Scope.TOKENS_WRITE, Scope.DEVICES_READ})
    ok = await client.post(
        "/api/tokens",
        headers=auth(minter),
        json={"name": "r", "scopes": ["devices:read", "tokens:read"]},
    )
    assert ok.status_code == 201
    # devices:write implies devices:claim, which this token does not hold.
    r = await client.post(
        "/api/tokens",
        headers=auth(minter),
        json={"name": "w", "scopes": ["devices:write"]},
    )
    assert r.status_code == 403
    assert "'devices:write'" in r.json()["detail"]
    assert "'devices:claim'" in r.json()["detail"]


async def test_minting_for_another_tenant_needs_tenants_write(client, pool, tenant):
    other = await make_tenant(pool, "b")
    plain = await mint(pool, tenant, {Scope.TOKENS_WRITE, Scope.DEVICES_READ})
    body = {"name": "x", "scopes": ["devices:read"], "tenant": other}
    r = await client.post("/api/tokens", headers=auth(plain), json=body)
    assert r.status_code == 404
    assert r.json()["detail"] == f"tenant '{other}' not found"

    operator = await mint(
        pool, tenant, {Scope.TOKENS_WRITE, Scope.TENANTS_WRITE, Scope.DEVICES_READ}
    )
    r = await client.post("/api/tokens", headers=auth(operator), json=body)
    assert r.status_code == 201
    assert r.json()["tenant"] == other
    theirs = await client.get("/api/devices", headers=auth(r.json()["token"]))
    assert theirs.status_code == 200
    nowhere = await client.post(
        "/api/tokens", headers=auth(operator), json=body | {"tenant": "no-such-tenant"}
    )
    assert nowhere.status_code == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/devices/claim", {}),
        ("/api/artifacts", {"uri": "https://e.com/a", "sha256": SHA}),
        ("/api/policies", {"name": "p"}),
    ],
)
async def test_write_for_another_tenant_is_404_and_writes_nothing(
    client, pool, tenant, token, path, body
):
    other = await make_tenant(pool, "b")
    r = await client.post(path, headers=auth(token), json=body | {"tenant": other})
    assert r.status_code == 404
    assert r.json()["detail"] == f"tenant '{other}' not found"
    for table in ("devices", "artifacts", "policies"):
        assert (
            await pool.fetchval(
                f"SELECT count(*) FROM {table} WHERE tenant = $1", other
            )
            == 0
        )
