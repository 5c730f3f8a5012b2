"""``POST /api/rollouts`` takes a selector as a JSON object, as ``k=v`` lines or
as a comma list (one parser); malformed text is a 422 that says where and shows
the accepted forms. The device list's ``label`` filter parses the same way."""

from __future__ import annotations

import pytest

from tests.integration.api.support import auth, mint
from xdp47_common.models import ALL_SCOPES

pytestmark = pytest.mark.integration

SHA = "cd" * 32
EXPECTED = {"fleet": "acc", "idx": "0"}


@pytest.fixture
async def token(pool, tenant):
    return await mint(pool, tenant, ALL_SCOPES)


@pytest.fixture
async def artifact_id(client, token, tenant):
    body = {"tenant": tenant, "uri": "https://example.com/a.tar", "sha256": SHA}
    r = await client.post("/api/artifacts", headers=auth(token), json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize(
    "selector",
    [EXPECTED, "fleet=acc\nidx=0", "fleet=acc,idx=0", " fleet = acc ,\n idx=0 \n"],
    ids=["object", "lines", "commas", "spaced"],
)
async def test_every_form_creates_the_same_selector(
    client, tenant, token, artifact_id, selector
):
    body = {"tenant": tenant, "artifact_id": artifact_id, "selector": selector}
    r = await client.post("/api/rollouts", headers=auth(token), json=body)
    assert r.status_code == 201, r.text
    assert r.json()["selector"] == EXPECTED
    got = await client.get(f"/api/rollouts/{r.json()['id']}", headers=auth(token))
    assert got.json()["selector"] == EXPECTED


@pytest.mark.parametrize(
    ("selector", "where"),
    [
        ("fleet=acc,idx 0", "selector 'idx 0' at column 15: expected =, !="),
        ("fleet=acc\nidx 0", "selector 'idx 0' at line 2, column 5"),
        ("model in (k2,", "'(' is not closed"),
        ("fleet=a b", "'a b' is not a label value"),
        ({"fleet": "a,b"}, "value of 'fleet' is not a label value"),
        (["fleet=acc"], "a selector list holds"),
    ],
)
async def test_malformed_selector_is_422_with_the_accepted_forms(
    client, tenant, token, artifact_id, selector, where
):
    body = {"tenant": tenant, "artifact_id": artifact_id, "selector": selector}
    r = await client.post("/api/rollouts", headers=auth(token), json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith("body.selector: ")
    assert "Value error" not in detail  # the parser's message, as written
    assert where in detail
    assert "accepted forms" in detail or "label value" in detail


async def test_openapi_shows_both_shapes(client):
    spec = (await client.get("/openapi.json")).json()
    schema = spec["components"]["schemas"]["RolloutCreate"]["properties"]["selector"]
    assert {s["type"] for s in schema["anyOf"]} == {"object", "array", "string"}


async def test_device_label_filter_takes_a_comma_list(client, tenant, token):
    for device_id, labels in [("s1", EXPECTED), ("s2", {"fleet": "acc", "idx": "1"})]:
        r = await client.post(
            "/api/devices/claim",
            headers=auth(token),
            json={"tenant": tenant, "device_id": device_id, "labels": labels},
        )
        assert r.status_code == 201, r.text
    both = await client.get(
        "/api/devices", headers=auth(token), params={"label": "fleet=acc,idx=0"}
    )
    assert [d["id"] for d in both.json()] == ["s1"]
    repeated = await client.get(
        "/api/devices",
        headers=auth(token),
        params=[("label", "fleet=acc"), ("label", "idx=1")],
    )
    assert [d["id"] for d in repeated.json()] == ["s2"]
    bad = await client.get(
        "/api/devices", headers=auth(token), params={"label": "fleet?"}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("query.label: selector 'fleet?' at column 1")
