"""The API docs work without internet (every asset comes from this server), and
every unknown or malformed ``/ui`` address answers the UI's own error page with a
fitting status, never raw JSON; ``/api`` keeps its JSON errors."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from tests.integration.api.support import make_tenant, mint
from tests.integration.ui.support import browser, signed_in
from xdp47_common.models import ALL_SCOPES

pytestmark = pytest.mark.integration

_ASSET = re.compile(r'(?:src|href)="([^"]+)"|(?:src|href)=\'([^\']+)\'')
_URL_IN_SCRIPT = re.compile(r"""(?:url|openapi_url|specUrl)\s*[:=]\s*['"]([^'"]+)""")


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_api_docs_load_only_local_assets(ui_app: FastAPI, path: str) -> None:
    async with browser(ui_app) as client:
        page = await client.get(path)
        assert page.status_code == 200
        # and the browser may load nothing from elsewhere
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assets = [a or b for a, b in _ASSET.findall(page.text)]
        assert any(a.endswith(".js") for a in assets), assets
        assert "://" not in page.text, "the page names another host"
        for asset in assets:
            assert asset.startswith("/"), asset
            answer = await client.get(asset)
            assert answer.status_code == 200, asset
            assert len(answer.content) > 1000, asset
        assert "/openapi.json" in page.text
        assert (await client.get("/openapi.json")).status_code == 200


def _error_page(text: str) -> str:
    assert text.lstrip().startswith("<!doctype html>"), text[:200]
    found = re.search(r'id="error-message">([^<]*)<', text)
    assert found, text[:500]
    return html.unescape(found.group(1))


async def test_unknown_and_malformed_ui_paths_get_the_error_page(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "err")
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        cases = [
            ("/ui/nope", 404, "There is no page"),
            ("/ui/rollouts/not-a-uuid", 422, "'not-a-uuid' is not a valid id"),
            ("/ui/rollouts/not-a-uuid/live", 422, "is not a valid id"),
            (f"/ui/rollouts/{uuid.uuid4()}", 404, "not found"),
            (f"/ui/rollouts/{uuid.uuid4()}/nope/more", 404, "There is no page"),
            ("/ui/rollouts?status=sideways", 422, "Status: 'sideways' is not one"),
        ]
        for path, status, words in cases:
            answer = await client.get(path)
            assert answer.status_code == status, (path, answer.text[:300])
            assert answer.headers["content-type"].startswith("text/html"), path
            assert words in _error_page(answer.text), path
            # signed in: the menu is there, so the operator can go on
            assert 'href="/ui/rollouts"' in answer.text, path
        wrong_method = await client.get(f"/ui/rollouts/{uuid.uuid4()}/start")
        assert wrong_method.status_code == 405
        assert "POST" in wrong_method.headers["allow"]
        _error_page(wrong_method.text)
    async with browser(ui_app) as anonymous:
        answer = await anonymous.get("/ui/nope")
        assert answer.status_code == 404
        _error_page(answer.text)
        assert 'href="/ui/signin"' in answer.text
        # outside /ui nothing changes: JSON as the API documents it
        api = await anonymous.get("/api/nope")
        assert api.status_code == 404
        assert api.json() == {"detail": "Not Found"}
        static = await anonymous.get("/ui/static/nope.css")
        assert static.status_code == 404
        assert "<html" not in static.text
