"""The audit trail through the API: each kind of write appends its record (who,
what, subject, request id, status before and after), refused rollout commands
too; ``GET /api/audit`` filters, pages by a stable keyset and shows a tenant
only its own records."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.api.audit_support import listed, rows
from tests.integration.api.support import auth, make_tenant, mint
from xdp47_api.pagination import encode_cursor
from xdp47_common.models import ALL_SCOPES, Scope

pytestmark = pytest.mark.integration


async def _token_id(client, token: str) -> str:
    """The id of the token the caller holds (its own entry in the trail)."""
    mine = (await client.get("/api/tokens", headers=auth(token))).json()
    return str(next(t["id"] for t in mine if t["name"] == "auditor"))


@pytest.fixture
async def admin(pool, tenant) -> str:
    return await mint(pool, tenant, ALL_SCOPES, name="auditor")


async def test_each_write_kind_is_recorded_with_its_actor(
    client, pool, tenant, admin
) -> None:
    h = {**auth(admin), "X-Request-ID": "req-audit-1"}
    me = f"token:{await _token_id(client, admin)}"
    pol = await client.post(
        "/api/policies", headers=h, json={"tenant": tenant, "name": "p1"}
    )
    claim = await client.post(
        "/api/devices/claim", headers=h, json={"tenant": tenant, "device_id": "a1"}
    )
    art = await client.post(
        "/api/artifacts",
        headers=h,
        json={
            "tenant": tenant,
            "uri": "https://example.com/a.bin",
            "sha256": "b" * 64,
            "version": "1.0",
        },
    )
    upload = await client.post(
        "/api/artifacts/upload",
        headers={**h, "Content-Type": "application/octet-stream"},
        params={"tenant": tenant},
        content=b"audit bytes",
    )
    group = await client.post(
        "/api/groups",
        headers=h,
        json={"tenant": tenant, "name": "g1", "selector": "model=k2"},
    )
    gid = group.json()["id"]
    patched = await client.patch(f"/api/groups/{gid}", headers=h, json={"name": "g2"})
    deleted = await client.delete(f"/api/groups/{gid}", headers=h)
    ro = await client.post(
        "/api/rollouts",
        headers=h,
        json={"tenant": tenant, "artifact_id": art.json()["id"]},
    )
    minted = await client.post(
        "/api/tokens", headers=h, json={"name": "ci", "scopes": ["devices:read"]}
    )
    tid = minted.json()["id"]
    revoked = await client.post(f"/api/tokens/{tid}:revoke", headers=h)
    again = await client.delete(f"/api/tokens/{tid}", headers=h)
    gone = await client.delete(f"/api/artifacts/{upload.json()['id']}", headers=h)
    answers = [pol, claim, art, upload, group, patched, deleted, ro, minted]
    assert [a.status_code for a in answers] == [201] * 5 + [200, 204, 201, 201]
    assert [a.status_code for a in (revoked, again, gone)] == [200, 200, 204]

    # The fixtures' tenant and token were written without a request: "system".
    got = [
        r for r in await listed(client, admin, order="asc") if r["actor"] != "system"
    ]
    by_action = [(r["action"], r["subject_id"]) for r in got]
    assert by_action == [
        ("policy.created", pol.json()["id"]),
        ("device.claimed", "a1"),
        ("artifact.created", art.json()["id"]),
        ("artifact.uploaded", upload.json()["id"]),
        ("group.created", gid),
        ("group.updated", gid),
        ("group.deleted", gid),
        ("rollout.created", ro.json()["id"]),
        ("token.minted", tid),
        ("token.revoked", tid),
        ("token.revoked", tid),
        ("artifact.deleted", upload.json()["id"]),
    ]
    for r in got:
        assert (r["actor"], r["actor_name"], r["request_id"]) == (
            me,
            "auditor",
            "req-audit-1",
        )
        assert r["tenant"] == tenant
    revokes = [r for r in got if r["action"] == "token.revoked"]
    assert [(r["status_before"], r["status_after"], r["outcome"]) for r in revokes] == [
        ("active", "revoked", "applied"),
        ("revoked", "revoked", "no_op"),
    ]
    created = next(r for r in got if r["action"] == "rollout.created")
    assert (created["status_after"], created["rollout_id"]) == (
        "draft",
        ro.json()["id"],
    )
    assert next(r for r in got if r["action"] == "group.updated")["detail"][
        "changed"
    ] == ["name"]


async def test_rollout_command_requests_are_recorded_refused_too(
    client, pool, tenant, admin
) -> None:
    h = {**auth(admin), "X-Request-ID": "req-cmd"}
    art = await client.post(
        "/api/artifacts",
        headers=h,
        json={"tenant": tenant, "uri": "https://e.com/x", "sha256": "c" * 64},
    )
    ro = await client.post(
        "/api/rollouts",
        headers=h,
        json={"tenant": tenant, "artifact_id": art.json()["id"]},
    )
    rid = ro.json()["id"]
    retry = await client.post(f"/api/rollouts/{rid}:retry", headers=h)
    assert retry.status_code == 409
    missing = str(uuid.uuid4())
    assert (
        await client.post(f"/api/rollouts/{missing}:abort", headers=h)
    ).status_code == 404
    start = await client.post(f"/api/rollouts/{rid}:start", headers=h)
    assert start.status_code == 202, start.text

    got = await listed(client, admin, action="rollout.*", order="asc")
    requests = [r for r in got if r["action"].endswith(".requested")]
    assert [
        (r["action"], r["subject_id"], r["outcome"], r["status_before"])
        for r in requests
    ] == [
        ("rollout.retry.requested", rid, "refused", "draft"),
        ("rollout.abort.requested", missing, "refused", None),
        ("rollout.start.requested", rid, "accepted", "draft"),
    ]
    assert requests[0]["detail"]["status"] == 409
    assert "cannot retry" in requests[0]["detail"]["detail"]
    assert requests[1]["rollout_id"] is None  # not the tenant's: named, not linked
    assert requests[2]["detail"]["message_id"]
    assert {r["request_id"] for r in requests} == {"req-cmd"}


async def test_keyset_pages_are_stable_and_complete(
    client, pool, tenant, admin
) -> None:
    h = auth(admin)
    for i in range(7):
        r = await client.post(
            "/api/policies", headers=h, json={"tenant": tenant, "name": f"k{i}"}
        )
        assert r.status_code == 201
    newest = await listed(client, admin, action="policy.created", limit=2)
    assert [r["detail"]["name"] for r in newest] == [f"k{i}" for i in range(6, -1, -1)]
    seqs = [r["seq"] for r in newest]
    assert seqs == sorted(seqs, reverse=True)
    assert len(set(seqs)) == 7
    # A record appended meanwhile is not a page's business: the walk from a
    # cursor goes on below it, never repeating or skipping one.
    first = await client.get(
        "/api/audit", headers=h, params={"action": "policy.created", "limit": 3}
    )
    cursor = first.headers["X-Next-Cursor"]
    assert 'rel="next"' in first.headers["Link"]
    await client.post("/api/policies", headers=h, json={"tenant": tenant, "name": "k7"})
    rest = await client.get(
        "/api/audit",
        headers=h,
        params={"action": "policy.created", "limit": 100, "cursor": cursor},
    )
    assert [r["seq"] for r in first.json() + rest.json()] == seqs
    oldest = await listed(client, admin, action="policy.created", order="asc", limit=3)
    assert [r["detail"]["name"] for r in oldest] == [f"k{i}" for i in range(8)]

    bad = await client.get("/api/audit", headers=h, params={"cursor": "nope"})
    assert bad.status_code == 422
    assert "cursor" in bad.json()["detail"]


async def test_filters_by_rollout_actor_action_and_time(client, pool, tenant) -> None:
    alice = await mint(pool, tenant, ALL_SCOPES, name="alice")
    bob = await mint(pool, tenant, [Scope.POLICIES_WRITE, Scope.AUDIT_READ], name="bob")
    art = await client.post(
        "/api/artifacts",
        headers=auth(alice),
        json={"tenant": tenant, "uri": "https://e.com/y", "sha256": "d" * 64},
    )
    ro = await client.post(
        "/api/rollouts",
        headers=auth(alice),
        json={"tenant": tenant, "artifact_id": art.json()["id"]},
    )
    rid = ro.json()["id"]
    await client.post(
        "/api/policies", headers=auth(bob), json={"tenant": tenant, "name": "bobs"}
    )

    of_rollout = await listed(client, bob, rollout=rid)
    assert [r["action"] for r in of_rollout] == ["rollout.created"]
    by_bob = await listed(client, bob, actor="bob")
    assert [r["action"] for r in by_bob] == ["policy.created"]
    by_id = await listed(client, bob, actor=by_bob[0]["actor"])
    assert by_id == by_bob
    artifacts = await listed(client, bob, action="artifact.*")
    assert [r["action"] for r in artifacts] == ["artifact.created"]
    assert await listed(client, bob, action="artifact") == []

    everything = await listed(client, bob, order="asc")
    cut = everything[-1]["at"]
    at_or_after = await listed(client, bob, since=cut)
    assert everything[-1]["seq"] in [r["seq"] for r in at_or_after]
    before = await listed(client, bob, until=cut)
    assert everything[-1]["seq"] not in [r["seq"] for r in before]
    assert {r["seq"] for r in before} | {r["seq"] for r in at_or_after} == {
        r["seq"] for r in everything
    }

    h = auth(bob)
    empty = await client.get(
        "/api/audit", headers=h, params={"since": cut, "until": cut}
    )
    assert empty.status_code == 422
    assert "until" in empty.json()["detail"]
    naive = await client.get(
        "/api/audit", headers=h, params={"since": "2026-01-01T00:00:00"}
    )
    assert naive.status_code == 422
    for params in (
        {"actor": "a\x00b"},
        {"since": "0001-01-01T00:00:00+05:00"},
        {"until": "9999-12-31T23:59:59-05:00"},
        {"cursor": encode_cursor(2**63)},
        {"cursor": encode_cursor(-1)},
    ):
        refused = await client.get("/api/audit", headers=h, params=params)
        assert refused.status_code == 422, (params, refused.text)
    wrong = await client.get("/api/audit", headers=h, params={"action": "DROP TABLE"})
    assert wrong.status_code == 422
    assert (
        await client.get("/api/audit", headers=h, params={"rollout": "x"})
    ).status_code == 422


async def test_a_tenant_sees_only_its_records(client, pool, tenant, admin) -> None:
    await client.post(
        "/api/policies", headers=auth(admin), json={"tenant": tenant, "name": "mine"}
    )
    art = await client.post(
        "/api/artifacts",
        headers=auth(admin),
        json={"tenant": tenant, "uri": "https://e.com/z", "sha256": "e" * 64},
    )
    ro = await client.post(
        "/api/rollouts",
        headers=auth(admin),
        json={"tenant": tenant, "artifact_id": art.json()["id"]},
    )
    other = await make_tenant(pool, "b")
    theirs = await mint(pool, other, ALL_SCOPES, name="auditor")
    seen = await listed(client, theirs)
    assert all(r["tenant"] == other for r in seen)
    assert await listed(client, theirs, rollout=ro.json()["id"]) == []
    assert await listed(client, theirs, action="policy.created") == []
    assert len(await rows(pool, tenant)) >= 3


async def test_the_audit_scope_is_needed(client, pool, tenant) -> None:
    reader = await mint(pool, tenant, [Scope.ROLLOUTS_READ, Scope.TOKENS_READ])
    r = await client.get("/api/audit", headers=auth(reader))
    assert r.status_code == 403
    assert "audit:read" in r.json()["detail"]


async def test_tenant_creation_is_recorded_in_both_tenants(
    client, pool, tenant, admin
) -> None:
    new = f"n-{uuid.uuid4().hex[:10]}"
    r = await client.post("/api/tenants", headers=auth(admin), json={"id": new})
    assert r.status_code == 201, r.text
    mine = await listed(client, admin, action="tenant.created", actor="auditor")
    assert [(x["tenant"], x["subject_id"]) for x in mine] == [(tenant, new)]
    theirs = await rows(pool, new)
    assert [(x["action"], x["actor_name"]) for x in theirs] == [
        ("tenant.created", "auditor")
    ]
    # Minting for the new tenant (tenants:write): recorded in both trails too.
    minted = await client.post(
        "/api/tokens",
        headers=auth(admin),
        json={"name": "boot", "scopes": ["devices:read"], "tenant": new},
    )
    assert minted.status_code == 201, minted.text
    assert [x["action"] for x in await rows(pool, new)][-1] == "token.minted"
    assert (await listed(client, admin, action="token.minted"))[0]["detail"][
        "tenant"
    ] == new
