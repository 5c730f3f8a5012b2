"""Artifact upload and download: streamed upload with SHA256 and size computed by
the server, content-addressed storage, byte ranges, device-credential access,
tenant isolation, the upload's own size limit and parameter validation."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.api.conftest import MAX_BODY, MAX_UPLOAD
from tests.integration.api.support import (
    auth,
    client_for,
    make_tenant,
    mint,
    running_app,
)
from xdp47_agent.download import DownloadLimits, download
from xdp47_agent.httpx_adapter import HttpxHttp
from xdp47_common.models import Scope
from xdp47_common.settings import ControlSettings

pytestmark = pytest.mark.integration

CONTENT = random.Random(47).randbytes(3 * MAX_BODY + 123)  # over the general limit
OCTETS = {"Content-Type": "application/octet-stream"}


def _blobs(settings: ControlSettings) -> list[Path]:
    return sorted(p for p in Path(settings.blob_dir).rglob("*") if p.is_file())


async def _upload(
    client: httpx.AsyncClient,
    token: str,
    tenant: str,
    content: bytes | AsyncIterator[bytes],
    **params: str,
) -> httpx.Response:
    return await client.post(
        "/api/artifacts/upload",
        headers={**auth(token), **OCTETS},
        params={"tenant": tenant, **params},
        content=content,
    )


async def _claim(client: httpx.AsyncClient, token: str, tenant: str) -> str:
    r = await client.post(
        "/api/devices/claim", headers=auth(token), json={"tenant": tenant}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["credential"])


@pytest.fixture
async def writer(pool: asyncpg.Pool[Any], tenant: str) -> str:
    return await mint(
        pool, tenant, {Scope.ARTIFACTS_WRITE, Scope.DEVICES_WRITE}, name="writer"
    )


@pytest.fixture
async def uploaded(client, writer, tenant) -> dict[str, Any]:
    r = await _upload(
        client,
        writer,
        tenant,
        CONTENT,
        version="2.0.0",
        type="application",
        filename="app-2.0.0.tar",
        metadata='{"notes": "demo"}',
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_upload_computes_sha256_and_size(client, writer, tenant, uploaded):
    assert uploaded["sha256"] == hashlib.sha256(CONTENT).hexdigest()
    assert uploaded["size"] == len(CONTENT)
    assert uploaded["tenant"] == tenant
    assert uploaded["version"] == "2.0.0"
    assert uploaded["metadata"] == {"notes": "demo", "filename": "app-2.0.0.tar"}
    assert uploaded["uri"] == f"http://api/api/artifacts/{uploaded['id']}/content"
    read = await client.get(f"/api/artifacts/{uploaded['id']}", headers=auth(writer))
    assert read.json() == uploaded


async def test_same_bytes_are_stored_once(client, writer, tenant, api_settings):
    content = b"dedup me " * 100
    first = await _upload(client, writer, tenant, content)
    blobs = _blobs(api_settings)
    second = await _upload(client, writer, tenant, content)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert _blobs(api_settings) == blobs
    digest = hashlib.sha256(content).hexdigest()
    assert [p.name for p in blobs].count(digest) == 1


async def test_chunked_upload_without_length(client, writer, tenant):
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(CONTENT), 5000):
            yield CONTENT[i : i + 5000]

    r = await _upload(client, writer, tenant, chunks())
    assert r.status_code == 201, r.text
    assert r.json()["sha256"] == hashlib.sha256(CONTENT).hexdigest()


async def test_download_whole_with_token_and_device(
    client, pool, writer, tenant, uploaded
):
    reader = await mint(pool, tenant, {Scope.ARTIFACTS_READ})
    device = await _claim(client, writer, tenant)
    url = f"/api/artifacts/{uploaded['id']}/content"
    for secret in (reader, device):
        r = await client.get(url, headers=auth(secret))
        assert r.status_code == 200, r.text
        assert r.content == CONTENT
        assert r.headers["content-length"] == str(len(CONTENT))
        assert r.headers["etag"] == f'"{uploaded["sha256"]}"'
        assert r.headers["accept-ranges"] == "bytes"
        assert 'filename="app-2.0.0.tar"' in r.headers["content-disposition"]


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=-10", len(CONTENT) - 10, len(CONTENT)),
        ("bytes=1000-2999", 1000, 3000),
        (f"bytes={len(CONTENT) - 5}-", len(CONTENT) - 5, len(CONTENT)),
        (f"bytes=10-{len(CONTENT) + 500}", 10, len(CONTENT)),
    ],
)
async def test_download_ranges(client, writer, uploaded, header, start, end):
    r = await client.get(
        f"/api/artifacts/{uploaded['id']}/content",
        headers={**auth(writer), "Range": header},
    )
    assert r.status_code == 206, r.text
    assert r.content == CONTENT[start:end]
    assert r.headers["content-range"] == f"bytes {start}-{end - 1}/{len(CONTENT)}"
    assert r.headers["content-length"] == str(end - start)


@pytest.mark.parametrize(
    "header",
    [f"bytes={len(CONTENT)}-", "bytes=500-100", "bytes=abc", "bytes=-0", "bytes=-"],
)
async def test_unsatisfiable_range_is_416(client, writer, uploaded, header):
    r = await client.get(
        f"/api/artifacts/{uploaded['id']}/content",
        headers={**auth(writer), "Range": header},
    )
    assert r.status_code == 416, r.text
    assert r.headers["content-range"] == f"bytes */{len(CONTENT)}"


async def test_conditional_requests(client, writer, uploaded):
    url = f"/api/artifacts/{uploaded['id']}/content"
    etag = f'"{uploaded["sha256"]}"'
    r = await client.get(url, headers={**auth(writer), "If-None-Match": etag})
    assert r.status_code == 304
    stale = {**auth(writer), "Range": "bytes=0-9", "If-Range": '"other"'}
    r = await client.get(url, headers=stale)
    assert r.status_code == 200
    assert r.content == CONTENT
    fresh = {**auth(writer), "Range": "bytes=0-9", "If-Range": etag}
    r = await client.get(url, headers=fresh)
    assert r.status_code == 206
    assert r.content == CONTENT[:10]


async def test_other_tenant_gets_404(client, pool, writer, uploaded):
    other = await make_tenant(pool, "b")
    b_writer = await mint(pool, other, {Scope.ARTIFACTS_WRITE, Scope.DEVICES_WRITE})
    b_device = await _claim(client, b_writer, other)
    url = f"/api/artifacts/{uploaded['id']}/content"
    for secret in (b_writer, b_device):
        r = await client.get(url, headers=auth(secret))
        assert r.status_code == 404, r.text
        assert r.json()["detail"] == f"artifact content '{uploaded['id']}' not found"
    # Knowing the digest does not help: B's own artifact pinned to the same
    # SHA256 is an external one, and its content is not served.
    external = await client.post(
        "/api/artifacts",
        headers=auth(b_writer),
        json={"tenant": other, "uri": "https://e.com/x", "sha256": uploaded["sha256"]},
    )
    r = await client.get(
        f"/api/artifacts/{external.json()['id']}/content", headers=auth(b_writer)
    )
    assert r.status_code == 404


async def test_unknown_device_credential_is_401(client, writer, tenant, uploaded):
    old = await _claim(client, writer, tenant)
    url = f"/api/artifacts/{uploaded['id']}/content"
    assert (await client.get(url, headers=auth(old))).status_code == 200
    broken = old[:-1] + ("a" if old[-1] != "a" else "b")
    r = await client.get(url, headers=auth(broken))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


async def test_oversized_upload_is_413_and_stores_nothing(
    client, pool, writer, tenant, api_settings
):
    count = "SELECT count(*) FROM artifacts WHERE tenant = $1"
    before_rows = await pool.fetchval(count, tenant)
    before_blobs = _blobs(api_settings)
    too_big = random.Random(2).randbytes(MAX_UPLOAD + 1)
    r = await _upload(client, writer, tenant, too_big)
    assert r.status_code == 413, r.text

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted
        for i in range(0, len(too_big), 4096):
            yield too_big[i : i + 4096]

    r = await _upload(client, writer, tenant, chunks())
    assert r.status_code == 413, r.text
    assert str(MAX_UPLOAD) in r.json()["detail"]
    assert await pool.fetchval(count, tenant) == before_rows
    assert _blobs(api_settings) == before_blobs


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "query.tenant"),
        ({"type": ""}, "query.type"),
        ({"version": "v" * 200}, "query.version"),
        ({"metadata": "{not json"}, "query.metadata"),
        ({"metadata": "[1, 2]"}, "query.metadata"),
        ({"filename": "../etc/passwd"}, "query.filename"),
        ({"tenant": "Not A Tenant!"}, "query.tenant"),
    ],
)
async def test_bad_params_are_422(
    client, pool, writer, tenant, api_settings, params, field
):
    before = _blobs(api_settings)
    query = {"tenant": tenant, **params} if params else {}
    r = await client.post(
        "/api/artifacts/upload",
        headers={**auth(writer), **OCTETS},
        params=query,
        content=b"never stored",
    )
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"]
    assert _blobs(api_settings) == before


async def test_other_tenant_in_params_is_404_and_wrong_type_415(
    client, pool, writer, tenant
):
    other = await make_tenant(pool, "b")
    r = await _upload(client, writer, other, b"x")
    assert r.status_code == 404
    assert r.json()["detail"] == f"tenant '{other}' not found"
    r = await client.post(
        "/api/artifacts/upload",
        headers={**auth(writer), "Content-Type": "multipart/form-data; boundary=x"},
        params={"tenant": tenant},
        content=b"--x--",
    )
    assert r.status_code == 415
    assert "application/octet-stream" in r.json()["detail"]


async def test_public_url_names_the_uri(api_settings, pool, tenant):
    settings = api_settings.model_copy(
        update={"public_url": "https://updates.example.com/xdp47/"}
    )
    token = await mint(pool, tenant, {Scope.ARTIFACTS_WRITE})
    async with running_app(settings) as app, client_for(app) as c:
        r = await _upload(c, token, tenant, b"public")
    assert r.status_code == 201, r.text
    assert r.json()["uri"] == (
        f"https://updates.example.com/xdp47/api/artifacts/{r.json()['id']}/content"
    )


async def test_agent_download_path_fetches_an_upload(
    app, client, writer, tenant, uploaded, tmp_path
):
    """The agent's own download function, with its credential, against the API."""
    device = await _claim(client, writer, tenant)
    limits = DownloadLimits(max_bytes=1 << 20, stall_timeout=5.0, deadline=10.0)
    async with client_for(app) as agent_client:
        digest = await download(
            HttpxHttp(agent_client),
            uploaded["uri"],
            tmp_path / "staged",
            size=uploaded["size"],
            limits=limits,
            credential=device,
            trusted_origins=("http://api",),
        )
    assert digest.hex() == uploaded["sha256"]
    assert (tmp_path / "staged").read_bytes() == CONTENT
