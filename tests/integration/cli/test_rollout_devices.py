"""A rollout's devices with their state and reason: ``GET /api/rollouts/{id}/
devices`` (filters, keyset pages, errors) and ``xdp47 rollouts devices``."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.cli.conftest import LiveApi
from tests.integration.cli.scripted import Run, Script, apply

pytestmark = pytest.mark.integration

A, F, S = "applied", "failed", "skipped"


async def test_devices_by_state_and_wave_in_keyset_pages(
    live_api: LiveApi, xdp47, pool: asyncpg.Pool[Any]
) -> None:
    script = Script(
        "failed",
        2,
        [
            [(A, None), (F, "sha256 mismatch"), (A, None)],
            [(F, "disk full"), (S, "rollout_failed"), (S, "rollout_failed")],
            None,
        ],
        [Run(1, succeeded=2, failed=1, outcome="succeeded"), Run(2, failed=1)],
    )
    rid = await apply(pool, live_api, script)
    headers = {"Authorization": f"Bearer {live_api.token}"}
    async with httpx.AsyncClient(base_url=live_api.url, headers=headers) as api:
        url = f"/api/rollouts/{rid}/devices"
        failed = (await api.get(url, params={"state": "failed"})).json()
        assert [(d["device_id"], d["wave"], d["reason"]) for d in failed] == [
            (script.ids[1][1], 1, "sha256 mismatch"),
            (script.ids[2][0], 2, "disk full"),
        ]
        assert {d["state"] for d in failed} == {"failed"}
        wave2 = (await api.get(url, params={"wave": 2})).json()
        assert [d["state"] for d in wave2] == ["failed", "skipped", "skipped"]
        # Pages of 2 cover the 6 listed devices once, in device-id order.
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 2} | (
                {"cursor": cursor} if cursor else {}
            )
            page = await api.get(url, params=params)
            assert page.status_code == 200, page.text
            seen += [d["device_id"] for d in page.json()]
            cursor = page.headers.get("X-Next-Cursor")
            if cursor is None:
                break
        assert seen == sorted(script.ids[1] + script.ids[2])
        bad_state = await api.get(url, params={"state": "pending"})
        assert bad_state.status_code == 422
        bad_cursor = await api.get(url, params={"cursor": "nope"})
        assert bad_cursor.status_code == 422
        assert "cursor" in bad_cursor.json()["detail"]
        unknown = await api.get(f"/api/rollouts/{uuid.uuid4()}/devices")
        assert unknown.status_code == 404

    login = xdp47(
        "login", "--url", live_api.url, "--token", live_api.token,
        "--tenant", live_api.tenant,
    )  # fmt: skip
    assert login.code == 0, login.stderr
    cli = xdp47("rollouts", "devices", str(rid), "--state", "failed", "-o", "json")
    assert cli.code == 0, cli.stderr
    assert json.loads(cli.stdout) == failed
    table = xdp47("rollouts", "devices", str(rid), "--state", "failed")
    assert "sha256 mismatch" in table.stdout
    assert "disk full" in table.stdout
