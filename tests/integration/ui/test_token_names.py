"""Where a person reads who did something, the UI names the token by its name
(the header, a rollout's status reason and its runs), and revoking a token asks
first, warning when it is the session's own token."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from tests.integration.api.support import make_tenant, mint
from tests.integration.ui.support import csrf_of, post_form, signed_in
from xdp47_api.auth import Principal
from xdp47_common.models import ALL_SCOPES

pytestmark = pytest.mark.integration


async def _token_id(pool: asyncpg.Pool[Any], tenant: str, name: str) -> uuid.UUID:
    found = await pool.fetchval(
        "SELECT id FROM api_tokens WHERE tenant = $1 AND name = $2", tenant, name
    )
    assert isinstance(found, uuid.UUID)
    return found


async def test_reasons_and_header_name_the_token(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "who")
    secret = await mint(pool, tenant, ALL_SCOPES, name="ops-oncall")
    token_id = await _token_id(pool, tenant, "ops-oncall")
    # what the scheduler writes for an abort this token sent (Principal.actor)
    actor = Principal(tenant, frozenset(), token_id).actor
    reason = f"aborted by {actor}"
    async with signed_in(ui_app, secret) as client:
        page = await client.get("/ui/rollouts")
        assert re.search(r'class="token"[^>]*>ops-oncall<', page.text)
        registered = await post_form(
            client,
            "/ui/artifacts",
            "/ui/artifacts",
            {"uri": "https://x.example/a", "sha256": "cd" * 32, "version": "9"},
        )
        artifact_id = registered.headers["location"].split("created=")[1]
        created = await post_form(
            client, "/ui/rollouts", "/ui/rollouts", {"artifact_id": artifact_id}
        )
        rollout_id = uuid.UUID(created.headers["location"].rsplit("/", 1)[1])
        await pool.execute(
            "UPDATE rollouts SET status = 'aborted', reason = $2 WHERE id = $1",
            rollout_id,
            reason,
        )
        await pool.execute(
            "INSERT INTO rollout_runs (rollout_id, wave, outcome, reason) "
            "VALUES ($1, 1, 'aborted', $2)",
            rollout_id,
            reason,
        )
        named = "aborted by token “ops-oncall”"
        for path in (
            "/ui/rollouts",
            f"/ui/rollouts/{rollout_id}",
            f"/ui/rollouts/{rollout_id}/live",
        ):
            text = (await client.get(path)).text
            assert str(token_id) not in text, path
            assert named in text, path
        detail = (await client.get(f"/ui/rollouts/{rollout_id}")).text
        assert re.search(r'id="status-reason">aborted by token “ops-oncall”<', detail)
        assert re.search(r"<td>aborted by token “ops-oncall”</td>", detail)  # runs
    # the API keeps the id: it is unique and never changes
    api = await pool.fetchval("SELECT reason FROM rollouts WHERE id = $1", rollout_id)
    assert api == reason


async def test_revoke_asks_first_and_warns_about_the_own_token(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "rev")
    secret = await mint(pool, tenant, ALL_SCOPES, name="admin")
    await mint(pool, tenant, ALL_SCOPES, name="ci")
    own = await _token_id(pool, tenant, "admin")
    other = await _token_id(pool, tenant, "ci")
    async with signed_in(ui_app, secret) as client:
        page = (await client.get("/ui/tenants")).text
        # a button opens the dialog; no form on the page revokes at once
        assert f'hx-get="/ui/tenants/tokens/{other}/revoke"' in page
        assert 'action="/ui/tenants/tokens/' not in page
        dialog = await client.get(f"/ui/tenants/tokens/{other}/revoke")
        assert dialog.status_code == 200
        assert "Revoke token “ci”?" in dialog.text
        assert 'id="revoke-own"' not in dialog.text
        own_dialog = await client.get(f"/ui/tenants/tokens/{own}/revoke")
        assert 'id="revoke-own"' in own_dialog.text
        assert "the token you are signed in with" in own_dialog.text
        missing = await client.get(f"/ui/tenants/tokens/{uuid.uuid4()}/revoke")
        assert missing.status_code == 404
        # the dialog's form is what revokes; the session's own token ends it
        revoked = await client.post(
            f"/ui/tenants/tokens/{own}/revoke",
            data={"csrf_token": csrf_of(own_dialog.text)},
        )
        assert revoked.status_code == 303
        after = await client.get("/ui/tenants")
        assert after.headers["location"] == "/ui/signin?reason=revoked"
