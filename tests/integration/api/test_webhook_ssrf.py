"""SSRF guard of webhook subscriptions with the default settings: a URL whose host
resolves to a private, loopback or link-local address is refused with a 422
that says which address and why."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.api.support import auth, mint
from xdp47_common.models import Scope

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
    ],
)
async def test_private_destinations_are_refused(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool[Any],
    tenant: str,
    url: str,
    kind: str,
) -> None:
    headers = auth(await mint(pool, tenant, [Scope.WEBHOOKS_WRITE]))
    r = await client.post("/api/webhooks", json={"url": url}, headers=headers)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert f"a {kind} address" in detail, detail
    assert "XDP47_WEBHOOK_ALLOW_PRIVATE" in detail
    assert (await client.get("/api/webhooks", headers=headers)).json() == []
