"""The shared web basics on the real app: body limit (413 by Content-Length and
by streamed bytes), health, readiness, metrics, OpenAPI, JSON errors, 503 when
the database is gone, and the dev token."""

from __future__ import annotations

import pytest

from tests.integration.api.conftest import MAX_BODY
from tests.integration.api.support import auth, client_for, mint, running_app
from xdp47_common.models import ALL_SCOPES
from xdp47_common.settings import Environment

pytestmark = pytest.mark.integration


async def test_oversized_body_by_content_length_is_413(client, pool, tenant):
    h = auth(await mint(pool, tenant, ALL_SCOPES))
    big = {"tenant": tenant, "labels": {"k": "v" * 10}, "pad": "x" * MAX_BODY}
    r = await client.post("/api/devices/claim", headers=h, json=big)
    assert r.status_code == 413
    assert str(MAX_BODY) in r.json()["detail"]
    assert (
        await pool.fetchval("SELECT count(*) FROM devices WHERE tenant = $1", tenant)
        == 0
    )


async def test_oversized_streamed_body_is_413(client, pool, tenant):
    """No Content-Length (chunked): the bytes are counted as they arrive."""
    h = auth(await mint(pool, tenant, ALL_SCOPES))
    sent = 0

    async def chunks():
        nonlocal sent
        for _ in range(64):
            sent += 1024
            yield b" " * 1024

    r = await client.post(
        "/api/artifacts",
        headers=h | {"Content-Type": "application/json"},
        content=chunks(),
    )
    assert r.status_code == 413
    assert sent <= MAX_BODY + 2 * 1024  # cut off early, not read whole


@pytest.mark.parametrize("path", ["/livez", "/healthz"])
async def test_liveness(client, path):
    r = await client.get(path)
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


async def test_readiness_checks_postgres_rabbitmq_and_the_artifact_store(client):
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"postgres": "ok", "rabbitmq": "ok", "artifacts": "ok"}


async def test_metrics_count_requests_by_route_template(client):
    await client.get("/api/devices/some-device")
    text = (await client.get("/metrics")).text
    assert 'route="/api/devices/{device_id}"' in text
    assert "xdp47_api_http_requests_total" in text
    assert "xdp47_api_http_request_duration_seconds_bucket" in text
    assert "some-device" not in text


async def test_openapi_and_docs(client):
    doc = (await client.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert (await client.get("/docs")).status_code == 200


async def test_unknown_path_is_json_404(client):
    r = await client.get("/api/nothing-here")
    assert r.status_code == 404
    assert "detail" in r.json()


async def test_database_gone_is_503_with_retry_after(api_settings, pool, tenant):
    token = await mint(pool, tenant, ALL_SCOPES)
    async with running_app(api_settings) as app, client_for(app) as c:
        await app.state.services.repos.pool.close()
        r = await c.get("/api/devices", headers=auth(token))
        ready = await c.get("/readyz")
    assert r.status_code == 503
    assert "Retry-After" in r.headers
    assert ready.status_code == 503
    assert ready.json()["checks"]["postgres"].startswith("failed")


async def test_dev_token_only_when_enabled(api_settings, pool):
    dev = api_settings.model_copy(
        update={
            "env": Environment.DEVELOPMENT,
            "dev_token_enabled": True,
            "dev_tenant": "dev-tenant-api-test",
        }
    )
    async with running_app(dev) as app, client_for(app) as c:
        h = auth("devtoken123")
        r = await c.post(
            "/api/devices/claim",
            headers=h,
            json={"tenant": "dev-tenant-api-test", "device_id": "d1"},
        )
        assert r.status_code == 201, r.text
        tenants = await c.get("/api/tenants?limit=1000", headers=h)
        assert "dev-tenant-api-test" in {t["id"] for t in tenants.json()}
    async with running_app(api_settings) as app, client_for(app) as c:
        r = await c.get("/api/devices", headers=auth("devtoken123"))
        assert r.status_code == 401
