"""Sign-in, CSRF, scopes and tenant isolation of the web UI."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from tests.integration.api.support import make_tenant, mint
from tests.integration.ui.support import (
    browser,
    csrf_of,
    insert_devices,
    post_form,
    sign_in,
    signed_in,
)
from xdp47_api.ui.session import SESSION_COOKIE
from xdp47_common.models import ALL_SCOPES, READ_SCOPES, Scope

pytestmark = pytest.mark.integration

SHA = "cd" * 32
WRITE_POSTS = (
    "/ui/artifacts",
    "/ui/artifacts/upload",
    "/ui/policies",
    "/ui/rollouts",
    "/ui/tenants/tokens",
)


async def test_bad_token_does_not_sign_in(pool: asyncpg.Pool[Any], ui_app: FastAPI):
    async with browser(ui_app) as client:
        answer = await sign_in(client, "xdp47t_" + "x" * 49)
        assert answer.status_code == 401
        assert "Sign-in failed" in answer.text
        assert SESSION_COOKIE not in client.cookies
        assert (await client.get("/ui/devices")).status_code == 303


async def test_session_cookie_flags(pool: asyncpg.Pool[Any], ui_app: FastAPI):
    tenant = await make_tenant(pool, "ui")
    async with browser(ui_app) as client:
        answer = await sign_in(client, await mint(pool, tenant, ALL_SCOPES))
        cookie = next(
            v
            for k, v in answer.headers.multi_items()
            if k == "set-cookie" and v.startswith(SESSION_COOKIE)
        )
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie


async def test_missing_csrf_is_refused(pool: asyncpg.Pool[Any], ui_app: FastAPI):
    tenant = await make_tenant(pool, "ui")
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        body = {"uri": "https://x.example/a", "sha256": SHA, "version": "9.9.9"}
        refused = await client.post("/ui/artifacts", data=body)
        assert refused.status_code == 403
        wrong = await client.post("/ui/artifacts", data={**body, "csrf_token": "x"})
        assert wrong.status_code == 403
        assert "9.9.9" not in (await client.get("/ui/artifacts")).text
        # htmx sends the token in a header instead of the form
        page = await client.get("/ui/artifacts")
        ok = await client.post(
            "/ui/artifacts",
            data=body,
            headers={"X-CSRF-Token": csrf_of(page.text), "HX-Request": "true"},
        )
        assert ok.status_code == 303
        signin = await client.post("/ui/signin", data={"token": "x"})
        assert signin.status_code == 403  # the sign-in form is protected too


async def test_read_only_token_sees_no_write_forms(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
):
    tenant = await make_tenant(pool, "ui")
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as admin:
        created = await post_form(
            admin,
            "/ui/artifacts",
            "/ui/artifacts",
            {"uri": "https://x.example/a", "sha256": SHA, "version": "1"},
        )
        artifact_id = created.headers["location"].split("created=")[1]
        rollout = await post_form(
            admin,
            "/ui/rollouts",
            "/ui/rollouts",
            {"artifact_id": artifact_id, "waves": "2"},
        )
        rollout_id = rollout.headers["location"].rsplit("/", 1)[1]
    async with signed_in(ui_app, await mint(pool, tenant, READ_SCOPES)) as reader:
        pages = [
            "/ui/devices",
            "/ui/artifacts",
            "/ui/policies",
            "/ui/rollouts",
            "/ui/tenants",
            "/ui/system",
            f"/ui/rollouts/{rollout_id}",
        ]
        for path in pages:
            html = (await reader.get(path)).text
            posts = html.count('method="post"')
            assert posts == 1, (path, "only the sign-out form")
            assert "data-action=" not in html, path
        csrf = csrf_of((await reader.get("/ui/rollouts")).text)
        for action in (
            *WRITE_POSTS,
            f"/ui/rollouts/{rollout_id}/start",
            f"/ui/rollouts/{rollout_id}/abort",
        ):
            answer = await reader.post(action, data={"csrf_token": csrf})
            assert answer.status_code == 403, action
        assert (await reader.get(f"/ui/rollouts/{rollout_id}/abort")).status_code == 403


async def test_another_tenants_objects_never_appear(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
):
    tenant_a = await make_tenant(pool, "ua")
    tenant_b = await make_tenant(pool, "ub")
    await insert_devices(pool, tenant_a, [f"{tenant_a}-dev"])
    async with signed_in(ui_app, await mint(pool, tenant_a, ALL_SCOPES)) as a:
        created = await post_form(
            a,
            "/ui/artifacts",
            "/ui/artifacts",
            {"uri": "https://x.example/a", "sha256": SHA, "version": "secret-ver"},
        )
        artifact_id = created.headers["location"].split("created=")[1]
        policy = await post_form(
            a, "/ui/policies", "/ui/policies", {"name": "secret-policy"}
        )
        policy_id = policy.headers["location"].split("created=")[1]
        rollout = await post_form(
            a,
            "/ui/rollouts",
            "/ui/rollouts",
            {"artifact_id": artifact_id, "name": "secret-rollout", "waves": "1"},
        )
        rollout_id = rollout.headers["location"].rsplit("/", 1)[1]
    secrets = (artifact_id, policy_id, rollout_id, "secret-ver", "secret-policy")
    # Everything but tenants:write, the platform operator's scope, which lists
    # every tenant by design.
    tenant_scopes = ALL_SCOPES - {Scope.TENANTS_WRITE}
    async with signed_in(ui_app, await mint(pool, tenant_b, tenant_scopes)) as b:
        for path in (
            "/ui/devices",
            "/ui/artifacts",
            "/ui/policies",
            "/ui/rollouts",
            "/ui/tenants",
        ):
            html = (await b.get(path)).text
            for value in (*secrets, "secret-rollout", f"{tenant_a}-dev", tenant_a):
                assert value not in html, (path, value)
        for path in (
            f"/ui/rollouts/{rollout_id}",
            f"/ui/rollouts/{rollout_id}/live",
            f"/ui/rollouts/{rollout_id}/events",
        ):
            answer = await b.get(path)
            assert answer.status_code == 404, path
            assert "secret-rollout" not in answer.text
        csrf = csrf_of((await b.get("/ui/rollouts")).text)
        start = await b.post(
            f"/ui/rollouts/{rollout_id}/start", data={"csrf_token": csrf}
        )
        assert start.status_code == 404
