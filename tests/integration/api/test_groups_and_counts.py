"""Device groups (static and dynamic, per tenant) with their members and live
count; the count endpoint the UI and CLI show while a selector is typed; the
device list filtered by any selector and sorted; artifacts declaring what they
run on."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.api.support import auth, mint
from xdp47_common.models import ALL_SCOPES

pytestmark = pytest.mark.integration

SHA = "ef" * 32


@pytest.fixture
async def h(pool, tenant):
    return auth(await mint(pool, tenant, ALL_SCOPES))


@pytest.fixture
async def fleet(client, pool, tenant, h):
    """Five devices: models k2/k3/k4, one in the canary ring, versions set."""
    rows = [
        ("a", "model=k2", "1.0"),
        ("b", "model=k2,ring=canary", "1.1"),
        ("c", "model=k3", "1.0"),
        ("d", "model=k4", None),
        ("e", "model=k3,test=yes", "1.0"),
    ]
    for ident, labels, _ in rows:
        body = {
            "tenant": tenant,
            "device_id": ident,
            "labels": dict(p.split("=") for p in labels.split(",")),
            "properties": {"arch": "arm64"},
        }
        r = await client.post("/api/devices/claim", headers=h, json=body)
        assert r.status_code == 201, r.text
    for ident, _, version in rows:
        await pool.execute(
            "UPDATE devices SET current_version = $3, "
            "last_seen = now() - $4::text::interval"
            " WHERE tenant = $1 AND id = $2",
            tenant,
            ident,
            version,
            f"{ord(ident)} seconds",
        )
    return [r[0] for r in rows]


async def _count(client, h, selector, **params):
    r = await client.get(
        "/api/devices:count", headers=h, params={"selector": selector, **params}
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_count_and_list_take_any_selector(client, h, fleet):
    assert (await _count(client, h, ""))["count"] == 5
    got = await _count(client, h, "model in (k2,k3), ring notin (canary), !test")
    assert got == {
        "selector": "model in (k2,k3),ring notin (canary),!test",
        "count": 2,
        "by": None,
        "buckets": [],
    }
    r = await client.get(
        "/api/devices",
        headers=h,
        params={"label": "model in (k2,k3),ring notin (canary),!test"},
    )
    assert [d["id"] for d in r.json()] == ["a", "c"]
    assert r.json()[0]["properties"] == {"arch": "arm64"}


async def test_count_by_version_and_label(client, h, fleet):
    by_version = await _count(client, h, "", by="version")
    assert by_version["buckets"] == [
        {"value": "1.0", "count": 3},
        {"value": "1.1", "count": 1},
        {"value": None, "count": 1},
    ]
    by_model = await _count(client, h, "model!=k4", by="label:model")
    assert by_model["buckets"] == [
        {"value": "k2", "count": 2},
        {"value": "k3", "count": 2},
    ]


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"selector": "model in (k2"}, "query.selector: selector 'model in (k2' at "),
        ({"selector": "a=b", "by": "colour"}, "query.by: 'colour'; one of version"),
        ({"selector": "a=b", "by": "label:bad key"}, "query.by: 'bad key'"),
    ],
)
async def test_count_refuses_bad_input_with_a_message(client, h, params, detail):
    r = await client.get("/api/devices:count", headers=h, params=params)
    assert r.status_code == 422
    assert r.json()["detail"].startswith(detail)


async def test_devices_sort_by_last_seen_version_and_status_with_paging(
    client, h, fleet
):
    async def ids(sort):
        out, params = [], {"sort": sort, "limit": 2}
        while True:
            r = await client.get("/api/devices", headers=h, params=params)
            assert r.status_code == 200, r.text
            out += [d["id"] for d in r.json()]
            if "X-Next-Cursor" not in r.headers:
                return out
            params = {**params, "cursor": r.headers["X-Next-Cursor"]}

    assert await ids("last_seen") == ["a", "b", "c", "d", "e"]
    assert await ids("version") == ["d", "a", "c", "e", "b"]
    assert await ids("id") == ["a", "b", "c", "d", "e"]
    assert sorted(await ids("status")) == ["a", "b", "c", "d", "e"]


async def test_static_and_dynamic_groups(client, h, tenant, fleet):
    dyn = await client.post(
        "/api/groups",
        headers=h,
        json={"tenant": tenant, "name": "k3s", "selector": "model in (k3)"},
    )
    assert dyn.status_code == 201, dyn.text
    assert dyn.json()["kind"] == "dynamic"
    assert dyn.json()["count"] == 2
    assert dyn.json()["selector_text"] == "model in (k3)"
    static = await client.post(
        "/api/groups",
        headers=h,
        json={"tenant": tenant, "name": "pilots", "devices": ["a", "d"]},
    )
    assert static.status_code == 201, static.text
    members = await client.get(f"/api/groups/{static.json()['id']}/devices", headers=h)
    assert members.json()["count"] == 2
    assert [d["id"] for d in members.json()["devices"]] == ["a", "d"]
    members = await client.get(f"/api/groups/{dyn.json()['id']}/devices", headers=h)
    assert [d["id"] for d in members.json()["devices"]] == ["c", "e"]

    # Count within a group, and a group's members change with labels.
    assert (await _count(client, h, "!test", group_id=dyn.json()["id"]))["count"] == 1
    await client.post(
        "/api/devices/claim",
        headers=h,
        json={"tenant": tenant, "device_id": "d", "labels": {"model": "k3"}},
    )
    got = await client.get(f"/api/groups/{dyn.json()['id']}", headers=h)
    assert got.json()["count"] == 3

    patched = await client.patch(
        f"/api/groups/{static.json()['id']}",
        headers=h,
        json={"devices": ["b"], "name": "pilot"},
    )
    assert (patched.json()["name"], patched.json()["count"]) == ("pilot", 1)
    listed = await client.get("/api/groups", headers=h)
    assert [g["name"] for g in listed.json()] == ["k3s", "pilot"]
    assert (
        await client.delete(f"/api/groups/{static.json()['id']}", headers=h)
    ).status_code == 204


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"name": "x"}, 422, "give either selector"),
        ({"name": "x", "selector": "a=b", "devices": ["a"]}, 422, "give either"),
        ({"name": "x", "devices": ["a", "nope"]}, 422, "1 not devices of the tenant"),
        ({"name": "x", "selector": "a in ()"}, 422, "is not a label value"),
    ],
)
async def test_group_bad_input_is_4xx_with_a_message(
    client, h, tenant, fleet, body, status, detail
):
    r = await client.post("/api/groups", headers=h, json={"tenant": tenant, **body})
    assert r.status_code == status, r.text
    assert detail in str(r.json()["detail"])


async def test_group_names_are_unique_and_a_targeted_group_stays(
    client, h, tenant, fleet
):
    body = {"tenant": tenant, "name": "same", "selector": "model=k2"}
    first = await client.post("/api/groups", headers=h, json=body)
    assert (await client.post("/api/groups", headers=h, json=body)).status_code == 409
    art = await client.post(
        "/api/artifacts",
        headers=h,
        json={
            "tenant": tenant,
            "uri": "https://example.com/a",
            "sha256": SHA,
            "compatible": "arch=arm64,device_type in (kiosk-k2,kiosk-k3)",
        },
    )
    assert art.json()["compatible"] == {
        "arch": ["arm64"],
        "device_type": ["kiosk-k2", "kiosk-k3"],
    }
    ro = await client.post(
        "/api/rollouts",
        headers=h,
        json={
            "tenant": tenant,
            "artifact_id": art.json()["id"],
            "group_id": first.json()["id"],
        },
    )
    assert ro.status_code == 201, ro.text
    assert ro.json()["group_id"] == first.json()["id"]
    r = await client.delete(f"/api/groups/{first.json()['id']}", headers=h)
    assert r.status_code == 409
    assert "targeted by rollout" in r.json()["detail"]
    unknown = await client.post(
        "/api/rollouts",
        headers=h,
        json={
            "tenant": tenant,
            "artifact_id": art.json()["id"],
            "group_id": str(uuid.uuid4()),
        },
    )
    assert unknown.status_code == 422
    assert unknown.json()["detail"].startswith("body.group_id: group")


async def test_artifact_compatible_is_checked(client, h, tenant):
    r = await client.post(
        "/api/artifacts",
        headers=h,
        json={
            "tenant": tenant,
            "uri": "https://example.com/a",
            "sha256": SHA,
            "compatible": "arch!=x86",
        },
    )
    assert r.status_code == 422
    assert "only key=value and key in (a,b)" in r.json()["detail"]
    up = await client.post(
        "/api/artifacts/upload",
        headers={**h, "Content-Type": "application/octet-stream"},
        params={"tenant": tenant, "compatible": '{"arch": ["arm64"]}'},
        content=b"bytes",
    )
    assert up.status_code == 201, up.text
    assert up.json()["compatible"] == {"arch": ["arm64"]}
