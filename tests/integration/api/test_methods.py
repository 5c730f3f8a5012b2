"""HTTP methods: every ``OPTIONS`` answer lists exactly the methods its path
serves (from the OpenAPI document), and a method a path does not serve answers
405 with ``Allow``, never 422 (``GET /api/rollouts/{id}:start`` used to reach
``GET /api/rollouts/{id}`` with ``{id}:start`` as the id)."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.integration.api.support import auth, mint
from xdp47_common.models import ALL_SCOPES

pytestmark = pytest.mark.integration

_ID = str(uuid.uuid4())


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", _ID, path)


def _allowed(methods: set[str]) -> set[str]:
    return {m.upper() for m in methods} | {"OPTIONS"}


async def test_options_lists_the_methods_of_every_path(client, pool, tenant):
    h = auth(await mint(pool, tenant, ALL_SCOPES))
    doc = (await client.get("/openapi.json")).json()
    wrong = {}
    for path, ops in doc["paths"].items():
        expected = _allowed(set(ops) - {"parameters"})
        r = await client.options(_concrete(path), headers=h)
        got = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
        got.discard("HEAD")  # served beside GET by some routes; not in OpenAPI
        if r.status_code not in (200, 204) or got != expected:
            wrong[path] = (r.status_code, sorted(got), sorted(expected))
    assert not wrong


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", f"/api/rollouts/{_ID}:start", "POST"),
        ("GET", f"/api/rollouts/{_ID}:retry", "POST"),
        ("GET", f"/api/rollouts/{_ID}:abort", "POST"),
        ("GET", f"/api/tokens/{_ID}:revoke", "POST"),
        ("PUT", f"/api/rollouts/{_ID}:start", "POST"),
        ("DELETE", "/api/rollouts", "GET, POST"),
    ],
)
async def test_a_method_not_served_is_405_with_allow(
    client, pool, tenant, method, path, allow
):
    h = auth(await mint(pool, tenant, ALL_SCOPES))
    r = await client.request(method, path, headers=h)
    assert r.status_code == 405, r.text
    assert {m.strip() for m in r.headers["allow"].split(",")} - {"HEAD"} == {
        m.strip() for m in allow.split(",")
    } | {"OPTIONS"}
