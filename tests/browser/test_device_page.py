"""The device page in a real browser: from the device list to one device, whose
rollout history says which rollout failed it and why (the code and its
sentence), with its last apply and latest heartbeats. The device reports through
the real ingest and the real scheduler judges it; a screenshot is saved under
artifacts/screenshots/."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import TIMEOUT_MS, LiveServer
from tests.browser.support import SimFleet, api_client
from tests.support.processes import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture
def fleet(live_server: LiveServer) -> Iterator[SimFleet]:
    sim = SimFleet(live_server)
    sim.start()
    yield sim
    sim.stop()
    assert sim.errors == [], sim.errors[:5]


def _failed_rollout(server: LiveServer, site: str, device_id: str) -> dict[str, Any]:
    """A started one-wave rollout over ``site``; returns the device's detail once
    the scheduler failed its target."""
    with api_client(server) as api:
        artifact = api.post(
            "/api/artifacts",
            json={
                "tenant": server.tenant,
                "uri": f"https://releases.example.com/{site}.tar",
                "sha256": "5e" * 32,
                "version": f"4.0.0-{site}",
            },
        )
        assert artifact.status_code == 201, artifact.text
        rollout = api.post(
            "/api/rollouts",
            json={
                "tenant": server.tenant,
                "artifact_id": artifact.json()["id"],
                "selector": {"site": site},
                "waves": 1,
                "name": f"devpage-{site}",
            },
        )
        assert rollout.status_code == 201, rollout.text
        rid = rollout.json()["id"]
        started = api.post(f"/api/rollouts/{rid}:start")
        assert started.status_code == 202, started.text
        seen: dict[str, Any] = {}

        def failed() -> None:
            r = api.get(f"/api/devices/{device_id}")
            assert r.status_code == 200, r.text
            seen.update(r.json())
            history = seen["rollout_history"]
            assert history, "no history yet"
            assert (history[0]["rollout_id"], history[0]["state"]) == (rid, "failed")

        wait_until(failed, within=TIMEOUT_MS / 1000)
        return seen


def test_device_page_shows_why_a_device_failed(
    page: Page, live_server: LiveServer, fleet: SimFleet, screenshots: Path
) -> None:
    site = f"devpage{uuid.uuid4().hex[:6]}"
    bad, good = f"{site}-bad", f"{site}-good"
    fleet.claim([bad, good], {"site": site})
    fleet.behave([bad], "fail")
    fleet.behave([good], "apply")
    detail = _failed_rollout(live_server, site, bad)
    assert detail["rollout_history"][0]["reason"] == "sha256_mismatch"

    page.goto(f"{live_server.url}/ui/signin")
    page.fill("input[name=token]", live_server.token)
    page.click("button[type=submit]")
    expect(page.locator("header .tenant")).to_have_text(live_server.tenant)

    page.goto(f"{live_server.url}/ui/devices?q={bad}")
    page.locator(f"tr[data-device='{bad}'] a").click()
    expect(page).to_have_url(f"{live_server.url}/ui/devices/{bad}")
    expect(page.locator("h1")).to_contain_text(bad)
    expect(page.locator("#device-current")).to_have_text("1.0.0")

    failed = page.locator(
        "#rollout-history tr[data-state=failed][data-reason=sha256_mismatch]"
    )
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text(f"devpage-{site}")
    expect(failed).to_contain_text("The downloaded bytes do not match")
    expect(failed.locator(".reason-detail")).to_have_text("sha256 mismatch: got 5e5e")
    last = page.locator("#last-apply [data-code=sha256_mismatch]")
    expect(last).to_contain_text("The downloaded bytes do not match")
    expect(page.locator("#recent-heartbeats tbody tr[data-seq]").first).to_contain_text(
        "error_rate=0.0"
    )
    page.screenshot(path=str(screenshots / "device-page.png"), full_page=True)

    # The history links to the rollout's page.
    failed.locator("a").click()
    expect(page).to_have_url(
        f"{live_server.url}/ui/rollouts/{detail['rollout_history'][0]['rollout_id']}"
    )

    # An id that names no device of this tenant: the UI's 404, no detail leaks.
    response = page.goto(f"{live_server.url}/ui/devices/no-such-{site}")
    assert response is not None
    assert response.status == 404
