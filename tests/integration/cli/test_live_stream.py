"""The rollout page's live stream against a real API process: a change that
committed before the stream subscribed (its event reached no one) is sent at
once, not after a refresh period; the stream then ends with ``done``."""

from __future__ import annotations

import re
import time
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.cli.conftest import LiveApi
from tests.integration.cli.scripted import Run, Script, apply
from xdp47_api.ui.pages.rollout_detail import REFRESH_SECONDS

pytestmark = pytest.mark.integration


async def test_a_change_before_the_subscription_is_sent_at_once(
    live_api: LiveApi, pool: asyncpg.Pool[Any]
) -> None:
    rid = await apply(
        pool,
        live_api,
        Script("running", 1, [[("assigned", None)] * 3], [Run(1)]),
    )
    async with httpx.AsyncClient(base_url=live_api.url, timeout=30) as ui:
        page = (await ui.get("/ui/signin")).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf
        await ui.post(
            "/ui/signin", data={"token": live_api.token, "csrf_token": csrf[1]}
        )
        assert 'data-status="running"' in (await ui.get(f"/ui/rollouts/{rid}")).text
        # The abort commits after the page rendered and before its stream
        # subscribed: no event will come for it.
        await pool.execute(
            "UPDATE rollouts SET status = 'aborted', finished_at = now() WHERE id = $1",
            rid,
        )
        began = time.monotonic()
        events: list[str] = []
        async with ui.stream("GET", f"/ui/rollouts/{rid}/events") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))
                    if len(events) == 1:
                        waited = time.monotonic() - began
                if line.startswith("data: ") and 'id="rollout-status"' in line:
                    assert 'data-status="aborted"' in line
                if events[-1:] == ["done"]:
                    break
    assert events == ["live", "done"]
    assert waited < REFRESH_SECONDS - 1, waited
