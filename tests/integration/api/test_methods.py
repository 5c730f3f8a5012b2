"""HTTP methods: every ``OPTIONS`` answer lists exactly the methods its path
serves (from the OpenAPI document), and a method a path does not serve answers
405 with ``Allow``, never 422 (``GET /api/rollouts/{id}:start`` used to reach
``GET /api/rollouts/{id}`` with ``{id}:start`` as the id)."""

from __future__ import annotations

import re

import pytest
from starlette.routing import compile_path

from tests.integration.api.support import auth, mint
from xdp47_common.models import ALL_SCOPES

pytestmark = pytest.mark.integration

_ID = "e5b4e04b-3fe3-4c2d-ba03-c6c804be2897"  # fixed: part of the test ids


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", _ID, path)


def _serves(template: str, path: str) -> bool:
    """``template`` matches ``path`` without an id swallowing a ``:verb``."""
    match = compile_path(template)[0].match(path)
    return match is not None and not any(":" in v for v in match.groupdict().values())


def _allowed(methods: set[str]) -> set[str]:
    return {m.upper() for m in methods} | {"OPTIONS"}


async def test_options_lists_the_methods_of_every_path(client, pool, tenant):
    h = auth(await mint(pool, tenant, ALL_SCOPES))
    doc = (await client.get("/openapi.json")).json()
    methods = {
        path: {m.upper() for m in ops if m != "parameters"}
        for path, ops in doc["paths"].items()
    }
    wrong = {}
    for path in methods:
        concrete = _concrete(path)
        # Every template the concrete path matches (a literal segment such as
        # /api/devices/claim also matches /api/devices/{device_id}).
        expected = _allowed(
            set().union(
                *(m for other, m in methods.items() if _serves(other, concrete))
            )
        )
        r = await client.options(concrete, headers=h)
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
