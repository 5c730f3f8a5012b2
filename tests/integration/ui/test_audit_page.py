"""``/ui/audit``: the trail of the UI's own writes with their actor, filters,
pages, the link from a rollout's page and the menu entry, and the scope."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from tests.integration.api.support import make_tenant, mint
from tests.integration.ui.support import post_form, signed_in
from xdp47_common.models import ALL_SCOPES, Scope

pytestmark = pytest.mark.integration

_ROW = re.compile(r'data-audit="(\d+)" data-action="([a-z_.]+)"')


def _rows(html: str) -> list[tuple[int, str]]:
    return [(int(s), a) for s, a in _ROW.findall(html)]


async def test_the_ui_lists_its_own_writes_with_their_actor(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "aud")
    token = await mint(pool, tenant, ALL_SCOPES, name="ui-operator")
    async with signed_in(ui_app, token) as client:
        for i in range(3):
            made = await post_form(
                client, "/ui/policies", "/ui/policies", {"name": f"pol-{i}"}
            )
            assert made.status_code == 303, made.text
        page = await client.get("/ui/audit")
        assert page.status_code == 200
        assert '<a href="/ui/audit"' in page.text  # in the menu
        rows = _rows(page.text)
        # Newest first; last, the fixtures' tenant and token (no request: system).
        assert [a for _, a in rows] == [
            *["policy.created"] * 3,
            "token.minted",
            "tenant.created",
        ]
        assert [s for s, _ in rows] == sorted((s for s, _ in rows), reverse=True)
        assert page.text.count("ui-operator") >= 3

        only = await client.get("/ui/audit", params={"action": "token.*"})
        assert [a for _, a in _rows(only.text)] == ["token.minted"]
        none = await client.get("/ui/audit", params={"action": "group.*"})
        assert _rows(none.text) == []
        mine = await client.get("/ui/audit", params={"actor": "ui-operator"})
        assert len(_rows(mine.text)) == 3
        later = await client.get("/ui/audit", params={"since": "2999-01-01T00:00"})
        assert _rows(later.text) == []

        bad = await client.get(
            "/ui/audit", params={"rollout": "nope", "action": "DROP TABLE"}
        )
        assert bad.status_code == 422
        assert "expected a rollout id" in bad.text
        assert "expected an action" in bad.text
        stale = await client.get("/ui/audit", params={"cursor": "x"})
        assert "no longer valid" in stale.text


async def test_pages_and_the_rollout_link(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "aud")
    token = await mint(pool, tenant, ALL_SCOPES)
    async with signed_in(ui_app, token) as client:
        for i in range(55):
            await post_form(client, "/ui/policies", "/ui/policies", {"name": f"p{i}"})
        first = await client.get("/ui/audit")
        rows = _rows(first.text)
        assert len(rows) == 50
        older = re.search(r'<a href="([^"]+)" rel="next">', first.text)
        assert older is not None
        second = await client.get(older.group(1).replace("&amp;", "&"))
        # The 55 policies, the fixtures' token and tenant: 57 records.
        assert len(_rows(second.text)) == 7
        assert {s for s, _ in rows}.isdisjoint(s for s, _ in _rows(second.text))

        artifact = await pool.fetchval(
            "INSERT INTO artifacts (id, tenant, uri, sha256) "
            "VALUES (gen_random_uuid(), $1, 'https://e.com/a', $2) RETURNING id",
            tenant,
            "ab" * 32,
        )
        made = await post_form(
            client,
            "/ui/rollouts",
            "/ui/rollouts",
            {"artifact_id": str(artifact), "waves": "1", "channel": "stable"},
        )
        assert made.status_code == 303, made.text
        rid = made.headers["location"].rstrip("/").split("/")[-1].split("?")[0]
        page = await client.get(f"/ui/rollouts/{rid}")
        assert f'href="/ui/audit?rollout={rid}"' in page.text
        of_rollout = await client.get("/ui/audit", params={"rollout": rid})
        assert [a for _, a in _rows(of_rollout.text)] == ["rollout.created"]


async def test_the_page_needs_the_audit_scope(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "aud")
    token = await mint(pool, tenant, [Scope.ROLLOUTS_WRITE])
    async with signed_in(ui_app, token) as client:
        assert (await client.get("/ui/audit")).status_code == 403
        nav = (await client.get("/ui/rollouts")).text
        assert 'href="/ui/audit"' not in nav
