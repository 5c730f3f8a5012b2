"""Before start, a rollout whose plan has no eligible device is called out: the
draft's page (where the create form lands) and ``xdp47 rollouts plan`` warn; a
rollout with an eligible device gets no warning."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.cli.conftest import LiveApi, log_in
from tests.integration.cli.scripted import draft

pytestmark = pytest.mark.integration


def _page(api: LiveApi, rid: str) -> str:
    with httpx.Client(base_url=api.url) as ui:
        csrf = re.search(
            r'name="csrf_token" value="([^"]+)"', ui.get("/ui/signin").text
        )
        assert csrf
        ui.post("/ui/signin", data={"token": api.token, "csrf_token": csrf[1]})
        page = ui.get(f"/ui/rollouts/{rid}")
        assert page.status_code == 200, page.text
        return page.text


async def test_a_plan_without_eligible_devices_is_called_out(
    live_api: LiveApi, xdp47, pool: asyncpg.Pool[Any]
) -> None:
    log_in(xdp47, live_api)
    empty = str(await draft(live_api, 2, selector={"site": "nowhere-at-all"}))
    html = _page(live_api, empty)
    assert 'id="zero-eligible"' in html
    assert 'data-plan-total="0"' in html
    plan = xdp47("rollouts", "plan", empty)
    assert plan.code == 0, plan.stderr
    assert "warning: no eligible device" in plan.stderr

    # Other tests of this session's tenant may leave a rollout running over all
    # of its devices; the plan rightly excludes the new device for it then.
    await pool.execute(
        "UPDATE rollouts SET status = 'aborted', finished_at = now(),"
        " hold = NULL, held_since = NULL"  # a held one too (only running holds)
        " WHERE tenant = $1 AND status = 'running'",
        live_api.tenant,
    )
    await pool.execute(
        "INSERT INTO devices (tenant, id, channel, status, labels)"
        " VALUES ($1, 'zero-warn-1', 'stable', 'online', $2)",
        live_api.tenant,
        {"site": "somewhere"},
    )
    some = str(await draft(live_api, 1, selector={"site": "somewhere"}))
    assert 'id="zero-eligible"' not in _page(live_api, some)
    assert "warning" not in xdp47("rollouts", "plan", some).stderr
