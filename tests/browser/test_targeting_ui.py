"""Targeting in a real browser: typing a selector on the devices page shows how
many devices it matches before anything is created (and where the text is
wrong), the fleet-by-version chart renders with a bar per version, a device page
shows its properties, and a dynamic group lists its members with their count."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.browser.conftest import LiveServer
from tests.e2e.operator_api import query

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _set_versions(db_url: str, tenant: str, versions: dict[str, str]) -> None:
    for device_id, version in versions.items():
        query(
            db_url,
            "UPDATE devices SET current_version = $3 WHERE tenant = $1 AND id = $2",
            tenant,
            device_id,
            version,
        )


def _fleet(server: LiveServer, run: str) -> None:
    """Six devices of this run: models k2/k3/k4, two versions."""
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    ) as api:
        for i, model in enumerate(["k2", "k2", "k3", "k3", "k3", "k4"]):
            r = api.post(
                "/api/devices/claim",
                json={
                    "tenant": server.tenant,
                    "device_id": f"{run}-{i}",
                    "labels": {"model": model, "run": run},
                    "properties": {"arch": "arm64", "device_type": f"kiosk-{model}"},
                },
            )
            assert r.status_code == 201, r.text
    _set_versions(
        server.db_url,
        server.tenant,
        {f"{run}-{i}": "2.0" if i < 2 else "1.9" for i in range(6)},
    )


def test_live_count_chart_and_groups(
    live_server: LiveServer, page: Page, screenshots
) -> None:
    run = f"t{uuid.uuid4().hex[:6]}"
    _fleet(live_server, run)
    blocked: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            blocked.append(message.text)

    page.on("console", on_console)
    page.goto(f"{live_server.url}/ui/signin")
    page.fill("input[name=token]", live_server.token)
    page.click("button[type=submit]")
    expect(page.locator("header .tenant")).to_have_text(live_server.tenant)

    page.goto(f"{live_server.url}/ui/devices?label=run%3D{run}")
    # The chart: one bar per version of the matching devices, largest first.
    chart = page.locator("#fleet-by-version")
    expect(chart).to_contain_text("6 devices")
    expect(chart.locator("li.bar-row")).to_have_count(2)
    expect(chart.locator("li[data-version='1.9'] .bar-count")).to_contain_text("4")
    expect(chart.locator("li[data-version='2.0'] .bar-count")).to_contain_text("2")

    def width(version: str) -> float:
        return float(
            chart.locator(f"li[data-version='{version}'] .bar").evaluate(
                "e => e.getBoundingClientRect().width"
            )
        )

    # Drawn to scale (4 devices against 2), with no inline style: the page's
    # CSP allows none, and a blocked style would leave every bar alike.
    assert width("1.9") == pytest.approx(2 * width("2.0"), rel=0.05)
    assert not blocked, blocked

    # Typing a selector shows the live count before anything is submitted.
    field = page.locator("form.filters input[name=label]")
    field.fill(f"run={run},model in (k2,k3)")
    expect(page.locator("#selector-count [data-count]")).to_have_attribute(
        "data-count", "5"
    )
    field.fill(f"run={run},model notin (k2,k3)")
    expect(page.locator("#selector-count [data-count]")).to_have_attribute(
        "data-count", "1"
    )
    field.fill("model in (k2")
    expect(page.locator("#selector-count [data-count-error]")).to_contain_text(
        "'(' is not closed"
    )
    page.screenshot(path=str(screenshots / "targeting-live-count.png"))

    # Split the chart by a label: where each version runs.
    page.goto(f"{live_server.url}/ui/devices?label=run%3D{run}&split=model")
    expect(
        page.locator("#fleet-by-version li[data-version='1.9'] .bar-where")
    ).to_contain_text("model=k3: 3")
    page.screenshot(path=str(screenshots / "targeting-fleet-by-version.png"))

    # A device page shows the properties its agent reported.
    page.goto(f"{live_server.url}/ui/devices/{run}-0")
    expect(page.locator("#device-properties")).to_contain_text("arch=arm64")

    # A dynamic group from the groups page: its members and live count.
    page.goto(f"{live_server.url}/ui/groups")
    page.locator("details.create summary").click()
    page.fill("input[name=name]", f"k3-{run}")
    page.fill("textarea[name=selector]", f"run={run},model=k3")
    expect(page.locator("#selector-count [data-count]")).to_have_attribute(
        "data-count", "3"
    )
    page.locator("form[action='/ui/groups'] button[type=submit]").click()
    expect(page.locator("#group-count")).to_have_text("3")
    expect(page.locator("tr[data-device]")).to_have_count(3)
