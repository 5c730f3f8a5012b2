"""The device credential goes with a download only to the control plane's own
origin (where uploaded artifacts are served), never to a third-party host."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from xdp47_agent.download import DownloadLimits, download, origin_trusted
from xdp47_agent.httpx_adapter import HttpxHttp

CREDENTIAL = "xdp47d_example-credential"
CONTENT = b"artifact bytes" * 10
LIMITS = DownloadLimits(max_bytes=1 << 20, stall_timeout=2.0, deadline=5.0)
TRUSTED = ("http://control.test", "http://ingest.test:8081")


async def _fetch(uri: str, tmp_path: Path) -> httpx.Request:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=CONTENT)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        digest = await download(
            HttpxHttp(client),
            uri,
            tmp_path / "staged",
            size=len(CONTENT),
            limits=LIMITS,
            credential=CREDENTIAL,
            trusted_origins=TRUSTED,
        )
    assert digest == hashlib.sha256(CONTENT).digest()
    assert len(seen) == 1
    return seen[0]


@pytest.mark.parametrize(
    "uri",
    [
        "http://control.test/api/artifacts/1/content",
        "http://control.test:80/api/artifacts/1/content",
        "http://ingest.test:8081/api/artifacts/1/content",
    ],
)
async def test_credential_sent_to_the_control_plane(uri: str, tmp_path: Path):
    request = await _fetch(uri, tmp_path)
    assert request.headers["authorization"] == f"Bearer {CREDENTIAL}"


@pytest.mark.parametrize(
    "uri",
    [
        "https://cdn.example.com/app.tar",
        "https://control.test/api/artifacts/1/content",  # other scheme
        "http://control.test:8080/api/artifacts/1/content",  # other port
        "http://control.test.evil.com/app.tar",
        "http://ingest.test/app.tar",  # ingest's host on another port
    ],
)
async def test_credential_not_sent_elsewhere(uri: str, tmp_path: Path):
    request = await _fetch(uri, tmp_path)
    assert "authorization" not in request.headers


def test_origin_trusted_compares_scheme_host_and_port():
    assert origin_trusted("http://control.test/x", TRUSTED)
    assert not origin_trusted("http://control.test/x", ())
    assert not origin_trusted("https://control.test/x", TRUSTED)
