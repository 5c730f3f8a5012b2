"""The audit trail is append-only: the table refuses UPDATE, DELETE and TRUNCATE
whoever asks, a rolled-back write leaves no record, and no route of the app (any
method, REST and UI alike, signed in with every scope) changes or deletes one,
while every write one of them makes leaves its record."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import asyncpg
import pytest
from starlette.routing import Route

from tests.integration.api.support import auth, mint
from tests.integration.ui.support import csrf_of, signed_in
from xdp47_api.repositories._trail import record, writing
from xdp47_common.models import ALL_SCOPES
from xdp47_common.models.audit import AuditEntry

pytestmark = pytest.mark.integration

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_LAST = "SELECT coalesce(max(seq), 0) FROM audit_records"
# Signing in and out writes a UI session, no data of the tenant's.
_SESSION = frozenset({"/ui/signin", "/ui/signout"})


def _entry(tenant: str, action: str = "test.appended") -> AuditEntry:
    return AuditEntry(
        tenant=tenant, actor="tests", action=action, subject_type="t", subject_id="1"
    )


async def _all(pool: asyncpg.Pool[Any]) -> dict[int, dict[str, Any]]:
    return {
        r["seq"]: dict(r)
        for r in await pool.fetch("SELECT * FROM audit_records ORDER BY seq")
    }


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET actor = 'someone else' WHERE tenant = $1",
        "DELETE FROM audit_records WHERE tenant = $1",
        "TRUNCATE audit_records",
    ],
)
async def test_the_table_refuses_changes(pool, tenant, statement) -> None:
    async with writing(pool) as conn:
        await record(conn, _entry(tenant))
    before = await _all(pool)
    args = [tenant] if "$1" in statement else []
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await pool.execute(statement, *args)
    assert await _all(pool) == before


async def test_a_rolled_back_write_leaves_no_record(pool, tenant) -> None:
    async def change_that_fails() -> None:
        async with writing(pool) as conn:
            await conn.execute(
                "INSERT INTO policies (id, tenant, name) VALUES ($1, $2, 'gone')",
                uuid.uuid4(),
                tenant,
            )
            await record(conn, _entry(tenant, "policy.created"))
            raise RuntimeError("the change fails after its record was written")

    with pytest.raises(RuntimeError):
        await change_that_fails()
    trail = (
        "SELECT 1 FROM audit_records WHERE tenant = $1 AND action = 'policy.created'"
    )
    assert await pool.fetch(trail, tenant) == []
    assert await pool.fetch("SELECT 1 FROM policies WHERE tenant = $1", tenant) == []


async def _resources(client, pool, tenant: str, h: dict[str, str]) -> dict[str, str]:
    """One of each kind, so that every route with an id reaches a real one."""
    claim = await client.post(
        "/api/devices/claim", headers=h, json={"tenant": tenant, "device_id": "w1"}
    )
    art = await client.post(
        "/api/artifacts/upload",
        headers={**h, "Content-Type": "application/octet-stream"},
        params={"tenant": tenant},
        content=b"walk artifact",
    )
    pol = await client.post(
        "/api/policies", headers=h, json={"tenant": tenant, "name": "walk"}
    )
    group = await client.post(
        "/api/groups",
        headers=h,
        json={"tenant": tenant, "name": "walk", "selector": "a=b"},
    )
    ro = await client.post(
        "/api/rollouts",
        headers=h,
        json={"tenant": tenant, "artifact_id": art.json()["id"]},
    )
    victim = await client.post(
        "/api/tokens", headers=h, json={"name": "victim", "scopes": ["devices:read"]}
    )
    for r in (claim, art, pol, group, ro, victim):
        assert r.status_code == 201, r.text
    seq = await pool.fetchval(
        "SELECT max(seq) FROM audit_records WHERE tenant = $1", tenant
    )
    return {
        "device_id": "w1",
        "artifact_id": art.json()["id"],
        "policy_id": pol.json()["id"],
        "group_id": group.json()["id"],
        "rollout_id": ro.json()["id"],
        "token_id": victim.json()["id"],
        "tenant": tenant,
        "verb": "abort",
        # Any id a future route might take (an audit record's, say): a record's.
        "*": str(seq),
    }


def _concrete(route: Route, ids: dict[str, str]) -> str:
    """The route's path with a real id for each parameter."""
    return re.sub(
        r"\{([^}:]+)(?::[^}]*)?\}",
        lambda m: ids.get(m.group(1), ids["*"]),
        route.path,
    )


def _routes(routes: Iterable[Any]) -> Iterator[Route]:
    """Every route of the app, inside included routers too (FastAPI keeps an
    included router as one entry of ``app.routes``)."""
    for route in routes:
        if isinstance(route, Route):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)


async def test_no_route_changes_or_deletes_a_record(app, client, pool, tenant) -> None:
    token = await mint(pool, tenant, ALL_SCOPES, name="walker")
    h = auth(token)
    ids = await _resources(client, pool, tenant, h)
    before = await _all(pool)
    routes = list(_routes(app.routes))
    # The walk misses no operation of the API, nor any UI page.
    documented = set((await client.get("/openapi.json")).json()["paths"])
    assert documented <= {r.path for r in routes}
    assert {"/ui/audit", "/ui/policies", "/ui/rollouts/{rollout_id}/{verb}"} <= {
        r.path for r in routes
    }
    # Signing out ends the session the UI routes are walked with: last.
    routes.sort(key=lambda r: r.path.endswith("/signout"))
    walked = 0
    unrecorded: list[tuple[str, str, int]] = []
    async with signed_in(app, token) as browser:
        csrf = csrf_of((await browser.get("/ui/policies")).text)
        for route in routes:
            path = _concrete(route, ids)
            ui = path.startswith("/ui")
            for method in _METHODS:
                if method == "GET" and path.endswith("/events"):
                    continue  # a live stream: reads, and does not end
                headers = {"X-CSRF-Token": csrf} if ui else h
                caller = browser if ui else client
                last = await pool.fetchval(_LAST)
                answer = await caller.request(method, path, headers=headers, json={})
                walked += 1
                # A write that succeeded left its record (a session is not one).
                wrote = method != "GET" and answer.status_code < 400
                if (
                    wrote
                    and route.path not in _SESSION
                    and (await pool.fetchval(_LAST) == last)
                ):
                    unrecorded.append((method, route.path, answer.status_code))
    after = await _all(pool)
    assert walked > 100
    assert unrecorded == []
    # Every record there before is there after, unchanged; new ones only
    # appended after them.
    assert {seq: after.get(seq) for seq in before} == before
    appended = [seq for seq in after if seq not in before]
    assert appended, "the walk wrote nothing: it exercised no write route"
    assert min(appended) > max(before)
    actions = {after[s]["action"] for s in appended if after[s]["tenant"] == tenant}
    assert {"rollout.abort.requested", "group.deleted"} <= actions
