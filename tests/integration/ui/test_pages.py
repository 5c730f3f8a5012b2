"""Every UI page renders for a full token, and the forms create what they say."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from tests.integration.api.support import make_tenant, mint
from tests.integration.ui.support import (
    csrf_of,
    insert_devices,
    post_form,
    signed_in,
)
from xdp47_common.models import ALL_SCOPES

pytestmark = pytest.mark.integration

SHA = "ab" * 32
PAGES = (
    "/ui/devices",
    "/ui/artifacts",
    "/ui/policies",
    "/ui/rollouts",
    "/ui/tenants",
    "/ui/system",
)


async def _artifact(client: Any, version: str) -> str:
    answer = await post_form(
        client,
        "/ui/artifacts",
        "/ui/artifacts",
        {
            "uri": f"https://releases.example.com/{version}.tar",
            "sha256": SHA,
            "type": "application",
            "version": version,
            "metadata": '{"notes": "ui test"}',
        },
    )
    assert answer.status_code == 303, answer.text
    return answer.headers["location"].split("created=")[1]


async def test_every_page_renders_for_a_full_token(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "ui")
    await insert_devices(pool, tenant, ["kiosk-1", "kiosk-2"], labels={"site": "a"})
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        for path in PAGES:
            page = await client.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            assert "Content-Security-Policy" in page.headers
        artifact_id = await _artifact(client, "2.0.0")
        created = await post_form(
            client,
            "/ui/rollouts",
            "/ui/rollouts",
            {
                "name": "ui-rollout",
                "artifact_id": artifact_id,
                "channel": "stable",
                "waves": "",
                "percentages": "50, 50",
                "selector": "site=a",
            },
        )
        assert created.status_code == 303, created.text
        detail = await client.get(created.headers["location"])
        assert detail.status_code == 200
        assert 'data-status="draft"' in detail.text
        assert detail.text.count('class="wave') >= 2  # one bar per wave
        rollout_id = created.headers["location"].rsplit("/", 1)[1]
        for extra in ("live", "abort"):
            fragment = await client.get(f"/ui/rollouts/{rollout_id}/{extra}")
            assert fragment.status_code == 200
        devices = await client.get("/ui/devices", params={"label": "site=a"})
        assert "kiosk-1" in devices.text
        assert "kiosk-2" in devices.text


async def test_bad_form_input_is_shown_next_to_its_field(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "ui")
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        answer = await post_form(
            client,
            "/ui/artifacts",
            "/ui/artifacts",
            {"uri": "ftp://x", "sha256": "nothex", "metadata": "{oops"},
        )
        assert answer.status_code == 422
        for name in ("uri", "sha256", "metadata"):
            assert f'id="{name}-error"' in answer.text, name
        assert "not valid JSON" in answer.text
        rollout = await post_form(
            client,
            "/ui/rollouts",
            "/ui/rollouts",
            {
                "artifact_id": str(uuid.uuid4()),
                "selector": "site in (a",
                "percentages": "30, 30",
            },
        )
        assert rollout.status_code == 422
        assert 'id="selector-error"' in rollout.text
        assert 'id="percentages-error"' in rollout.text
        policy = await post_form(
            client,
            "/ui/policies",
            "/ui/policies",
            {"name": "p", "min_success_ratio": "1.5"},
        )
        assert policy.status_code == 422
        assert 'id="min_success_ratio-error"' in policy.text


async def test_token_secret_is_shown_once_and_revoke_ends_its_sessions(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "ui")
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as admin:
        page = await admin.get("/ui/tenants")
        minted = await admin.post(
            "/ui/tenants/tokens",
            data={
                "name": "viewer",
                "scopes": ["rollouts:read", "devices:read"],
                "expires_in_days": "7",
                "csrf_token": csrf_of(page.text),
            },
        )
        assert minted.status_code == 201
        found = re.search(r'id="minted-secret">(xdp47t_[^<]+)<', minted.text)
        assert found
        secret = found.group(1)
        async with signed_in(ui_app, secret) as viewer:
            assert (await viewer.get("/ui/rollouts")).status_code == 200
            listing = await admin.get("/ui/tenants")
            assert secret not in listing.text  # only the answer to the POST had it
            token_id = re.findall(r'data-token="([^"]+)"', listing.text)[-1]
            revoked = await admin.post(
                f"/ui/tenants/tokens/{token_id}/revoke",
                data={"csrf_token": csrf_of(listing.text)},
            )
            assert revoked.status_code == 303
            again = await viewer.get("/ui/rollouts")
            assert again.status_code == 303
            assert again.headers["location"] == "/ui/signin?reason=revoked"
