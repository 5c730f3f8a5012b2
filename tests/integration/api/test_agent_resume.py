"""The agent's download resumes a dropped connection with a Range request, against
both places devices download uploaded artifacts from: the api's ranged content
route (filesystem store) and a presigned URL of the S3 store on a real S3 server.

The servers are real; only the connection drop is made, by a transport that
cuts a response body after a given number of bytes (as a peer closing the
socket would) and records the request headers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.blobs.conftest import s3_blob_store
from tests.integration.api.support import auth, mint
from tests.support.s3 import S3Server, client, new_bucket
from xdp47_agent.download import DownloadLimits, download
from xdp47_agent.httpx_adapter import HttpxHttp
from xdp47_agent.verify import ApplyRefused
from xdp47_common.adapters.objects import ArtifactLinks, blob_key
from xdp47_common.models import Scope

pytestmark = pytest.mark.integration

CONTENT = os.urandom(60_000)  # under the suite's MAX_UPLOAD
LIMITS = DownloadLimits(max_bytes=1 << 20, stall_timeout=5.0, deadline=20.0)


class _Cut(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, cut: int) -> None:
        self._inner, self._cut = inner, cut

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in self._inner:
            if sent + len(chunk) >= self._cut:
                yield chunk[: self._cut - sent]
                raise httpx.RemoteProtocolError("peer closed connection mid-body")
            sent += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class Dropping(httpx.AsyncBaseTransport):
    """Cuts the n-th response's body after ``cuts[n]`` bytes."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, cuts: list[int], *, if_range: str = ""
    ) -> None:
        self.inner, self.cuts, self.if_range = inner, list(cuts), if_range
        self.sent: list[dict[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.if_range and "if-range" in request.headers:
            request.headers["If-Range"] = self.if_range  # as if the object changed
        self.sent.append(dict(request.headers))
        response = await self.inner.handle_async_request(request)
        if not self.cuts:
            return response
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Cut(response.stream, self.cuts.pop(0)),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def uploaded(client, pool, tenant) -> tuple[dict[str, Any], str]:
    token = await mint(
        pool, tenant, {Scope.ARTIFACTS_WRITE, Scope.DEVICES_WRITE}, name="w"
    )
    r = await client.post(
        "/api/artifacts/upload",
        headers={**auth(token), "Content-Type": "application/octet-stream"},
        params={"tenant": tenant},
        content=CONTENT,
    )
    assert r.status_code == 201, r.text
    claim = await client.post(
        "/api/devices/claim", headers=auth(token), json={"tenant": tenant}
    )
    return dict(r.json()), str(claim.json()["credential"])


async def _download(
    transport: httpx.AsyncBaseTransport, uri: str, dest: Path, **kw: Any
) -> bytes:
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        return await download(
            HttpxHttp(c), uri, dest, size=len(CONTENT), limits=LIMITS, **kw
        )


async def test_the_api_download_resumes_where_the_connection_dropped(
    app, uploaded, tmp_path: Path
) -> None:
    artifact, credential = uploaded
    transport = Dropping(httpx.ASGITransport(app=app), [20_000, 10_000])
    digest = await _download(
        transport,
        artifact["uri"],
        tmp_path / "staged",
        credential=credential,
        trusted_origins=("http://api",),
    )
    assert digest.hex() == artifact["sha256"]
    assert (tmp_path / "staged").read_bytes() == CONTENT
    ranges = [(h.get("range"), h.get("if-range")) for h in transport.sent]
    etag = f'"{artifact["sha256"]}"'
    assert ranges == [
        (None, None),
        ("bytes=20000-", etag),
        ("bytes=30000-", etag),
    ]
    # The device credential went with every request to the trusted origin.
    assert all(h["authorization"] == f"Bearer {credential}" for h in transport.sent)


async def test_a_changed_etag_starts_the_file_over(
    app, uploaded, tmp_path: Path
) -> None:
    artifact, credential = uploaded
    transport = Dropping(
        httpx.ASGITransport(app=app), [25_000], if_range='"something-else"'
    )
    digest = await _download(
        transport,
        artifact["uri"],
        tmp_path / "staged",
        credential=credential,
        trusted_origins=("http://api",),
    )
    assert digest.hex() == artifact["sha256"]
    assert (tmp_path / "staged").read_bytes() == CONTENT
    assert len(transport.sent) == 2  # the second answer was the whole body


async def test_a_presigned_bucket_url_resumes_too(s3: S3Server, tmp_path: Path) -> None:
    bucket = new_bucket(s3)
    digest = hashlib.sha256(CONTENT).hexdigest()
    client(s3).put_object(Bucket=bucket, Key=blob_key(digest), Body=CONTENT)
    url = ArtifactLinks(s3_blob_store(s3, bucket).store).url_for(digest)
    transport = Dropping(httpx.AsyncHTTPTransport(), [15_000, 15_000, 15_000])
    got = await _download(transport, url, tmp_path / "staged", credential="secret")
    assert got.hex() == digest
    assert (tmp_path / "staged").read_bytes() == CONTENT
    assert [h.get("range") for h in transport.sent] == [
        None,
        "bytes=15000-",
        "bytes=30000-",
        "bytes=45000-",
    ]
    # S3's own ETag guards the resume; the credential never went to the bucket.
    assert all(h.get("if-range") for h in transport.sent[1:])
    assert not any("authorization" in h for h in transport.sent)


async def test_too_many_drops_fail_the_download(app, uploaded, tmp_path: Path) -> None:
    artifact, credential = uploaded
    transport = Dropping(httpx.ASGITransport(app=app), [5_000] * 5)
    with pytest.raises(ApplyRefused) as refused:
        await _download(
            transport,
            artifact["uri"],
            tmp_path / "staged",
            credential=credential,
            trusted_origins=("http://api",),
        )
    # every answer was cut short of its Content-Length: once the resumes are
    # spent that is a size problem (code size_mismatch), not a refused download
    assert refused.value.reason == "size mismatch"
    assert "connection closed after" in refused.value.detail
    assert not (tmp_path / "staged").exists()
    assert len(transport.sent) == 4  # the first request and three resumes
