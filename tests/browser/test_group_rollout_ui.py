"""A rollout created from a saved device group through the form: the form lists
the tenant's groups (static and dynamic) with their member counts, choosing one
shows the live count of its members (narrowed by a typed selector), and the
draft it creates targets that group."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer
from tests.browser.support import api_client, execute, rollout_id_by_name

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _groups(server: LiveServer, run: str) -> dict[str, Any]:
    """Five devices of this run (two k2, three k3), a dynamic group of the
    k3 ones and a static group of two devices."""
    with api_client(server) as api:
        for i, model in enumerate(["k2", "k2", "k3", "k3", "k3"]):
            r = api.post(
                "/api/devices/claim",
                json={
                    "tenant": server.tenant,
                    "device_id": f"{run}-{i}",
                    "labels": {"model": model, "run": run, "ring": str(i % 2)},
                },
            )
            assert r.status_code == 201, r.text
        dynamic = api.post(
            "/api/groups",
            json={
                "tenant": server.tenant,
                "name": f"k3-{run}",
                "selector": f"run={run},model=k3",
            },
        )
        assert dynamic.status_code == 201, dynamic.text
        static = api.post(
            "/api/groups",
            json={
                "tenant": server.tenant,
                "name": f"pair-{run}",
                "devices": [f"{run}-0", f"{run}-1"],
            },
        )
        assert static.status_code == 201, static.text
    return {"dynamic": dynamic.json(), "static": static.json()}


def test_rollout_from_a_group_through_the_form(
    live_server: LiveServer, page: Page, screenshots
) -> None:
    run = f"g{uuid.uuid4().hex[:6]}"
    groups = _groups(live_server, run)
    artifact = uuid.uuid4()
    execute(
        live_server,
        (
            "INSERT INTO artifacts (id, tenant, uri, sha256, version) "
            "VALUES ($1, $2, 'https://x.example/g', $3, $4)",
            (artifact, live_server.tenant, "1" * 64, f"5.0.0-{run}"),
        ),
    )
    page.goto(f"{live_server.url}/ui/signin")
    page.fill("input[name=token]", live_server.token)
    page.click("button[type=submit]")
    expect(page.locator("header .tenant")).to_have_text(live_server.tenant)

    page.goto(f"{live_server.url}/ui/rollouts")
    page.locator("details.create summary").click()
    form = page.locator("form[method=post][action='/ui/rollouts']")
    group = form.locator("select[name=group_id]")
    # Both groups are offered, each with its member count now.
    dynamic_id, static_id = groups["dynamic"]["id"], groups["static"]["id"]
    expect(group.locator(f"option[value='{dynamic_id}']")).to_contain_text(
        "dynamic · 3 devices"
    )
    expect(group.locator(f"option[value='{static_id}']")).to_contain_text(
        "static · 2 devices"
    )

    count = page.locator("#selector-count [data-count]")
    # The static group: its members' live count, before anything is created.
    group.select_option(static_id)
    expect(count).to_have_attribute("data-group", static_id)
    expect(count).to_have_attribute("data-count", "2")
    # The dynamic group, narrowed by a selector typed beside it.
    group.select_option(dynamic_id)
    expect(count).to_have_attribute("data-count", "3")
    expect(count).to_contain_text(f"in group k3-{run}")
    form.locator("textarea[name=selector]").fill("ring=0")
    expect(count).to_have_attribute("data-count", "2")  # devices 2 and 4
    form.locator("textarea[name=selector]").fill("")
    expect(count).to_have_attribute("data-count", "3")

    name = f"from-group-{run}"
    form.locator("input[name=name]").fill(name)
    form.locator("select[name=artifact_id]").select_option(str(artifact))
    page.screenshot(path=str(screenshots / "rollout-from-group.png"))
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{live_server.url}/ui/rollouts/*")

    rollout_id = rollout_id_by_name(live_server, name)
    with api_client(live_server) as api:
        rollout = api.get(f"/api/rollouts/{rollout_id}").json()
    assert rollout["group_id"] == dynamic_id
    assert rollout["status"] == "draft"
    # The list names the group the rollout targets.
    page.goto(f"{live_server.url}/ui/rollouts")
    row = page.locator(f"tr[data-rollout='{rollout_id}']")
    expect(row.locator(f"[data-group='{dynamic_id}']")).to_have_text(f"group k3-{run}")


def test_a_group_of_another_tenant_is_not_counted(
    live_server: LiveServer, page: Page
) -> None:
    """The count fragment checks the group against the session's tenant."""
    page.goto(f"{live_server.url}/ui/signin")
    page.fill("input[name=token]", live_server.token)
    page.click("button[type=submit]")
    expect(page.locator("header .tenant")).to_have_text(live_server.tenant)
    foreign = uuid.uuid4()
    for value, message in ((str(foreign), "not found"), ("nope", "not a group id")):
        answer = page.request.get(
            f"{live_server.url}/ui/selector-count",
            params={"selector": "", "group_id": value},
        )
        assert answer.status == 200
        assert message in answer.text()
        assert "data-count=" not in answer.text()
