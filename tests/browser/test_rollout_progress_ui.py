"""A rollout's progress in a real browser (Debian's chromium, headless), with the
real scheduler moving simulated devices: the device list with its "failed only"
filter, the abort dialog's count over the current and all later waves, and a
retry followed live without a reload. Screenshots go to artifacts/screenshots/.

Drafts and the policy are created through the REST API (the forms have tests of
their own); every step under test is done in the page.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import TIMEOUT_MS, LiveServer
from tests.browser.support import SimFleet

pytestmark = [pytest.mark.browser, pytest.mark.integration]

# A live change arrives with the scheduler's event, or at the latest with the
# page's periodic refresh (every 5 s).
LIVE_MS = 20_000


@pytest.fixture
def page(chromium: Browser, live_server: LiveServer) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.goto(f"{live_server.url}/ui/signin")
    p.fill("input[name=token]", live_server.token)
    p.click("button[type=submit]")
    expect(p.locator("header .tenant")).to_have_text(live_server.tenant)
    yield p
    try:
        assert errors == [], errors
    finally:
        context.close()


@pytest.fixture
def fleet(live_server: LiveServer) -> Iterator[SimFleet]:
    sim = SimFleet(live_server)
    sim.start()
    yield sim
    sim.stop()
    assert sim.errors == [], sim.errors[:5]


def _api(server: LiveServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {server.token}"}
    r = httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=10)
    assert r.status_code in (200, 201, 202), r.text
    answer: dict[str, Any] = r.json()
    return answer


def _draft(server: LiveServer, site: str, waves: int, **policy: Any) -> str:
    """A draft over the devices labelled ``site=<site>`` under a policy of its own."""
    artifact = _api(
        server,
        "/api/artifacts",
        {
            "tenant": server.tenant,
            "uri": f"https://releases.example.com/{site}.tar",
            "sha256": hashlib.sha256(site.encode()).hexdigest(),
            "version": f"3.0.0-{site}",
        },
    )
    pol = _api(
        server,
        "/api/policies",
        {"tenant": server.tenant, "name": f"policy-{site}", **policy},
    )
    rollout = _api(
        server,
        "/api/rollouts",
        {
            "tenant": server.tenant,
            "name": f"rollout-{site}",
            "artifact_id": artifact["id"],
            "policy_id": pol["id"],
            "selector": {"site": site},
            "waves": waves,
        },
    )
    return str(rollout["id"])


def _site(fleet: SimFleet, n: int) -> tuple[str, list[str]]:
    site = f"s{uuid.uuid4().hex[:6]}"
    ids = [f"{site}-{k:02d}" for k in range(n)]
    fleet.claim(ids, {"site": site})
    return site, ids


def _wave(page: Page, n: int) -> Any:
    return page.locator(f"#wave-counts tr[data-wave='{n}']")


def _start(page: Page, server: LiveServer, rid: str) -> None:
    page.goto(f"{server.url}/ui/rollouts/{rid}")
    page.click("button[data-action=start]")
    expect(page.locator(".notice")).to_contain_text(
        "start command was sent", timeout=TIMEOUT_MS
    )


def test_device_list_with_failed_only_filter(
    page: Page, live_server: LiveServer, fleet: SimFleet, screenshots: Path
) -> None:
    site, ids = _site(fleet, 6)
    fleet.behave(ids[:4], "apply")
    fleet.behave(ids[4:], "fail")
    rid = _draft(live_server, site, 1, min_success_ratio=0.5, max_failures_per_wave=2)
    _start(page, live_server, rid)
    expect(page.locator("#rollout-status")).to_have_attribute(
        "data-status", "partial", timeout=LIVE_MS
    )
    rows = page.locator("#rollout-devices tbody tr[data-device]")
    expect(rows).to_have_count(6, timeout=LIVE_MS)
    expect(page.locator("#rollout-devices tr[data-state=succeeded]")).to_have_count(
        4, timeout=TIMEOUT_MS
    )
    page.click("#devices [data-filter=failed]")
    expect(page.locator("#devices")).to_have_attribute(
        "data-state-filter", "failed", timeout=TIMEOUT_MS
    )
    expect(rows).to_have_count(2, timeout=TIMEOUT_MS)
    for device in ids[4:]:
        row = page.locator(f"#rollout-devices tr[data-device='{device}']")
        expect(row).to_have_attribute("data-state", "failed")
        expect(row).to_contain_text("sha256_mismatch")
    page.screenshot(
        path=str(screenshots / "rollout-devices-failed.png"), full_page=True
    )
    page.click("#devices [data-filter=all]")
    expect(rows).to_have_count(6, timeout=TIMEOUT_MS)


def test_abort_dialog_counts_every_later_wave(
    page: Page, live_server: LiveServer, fleet: SimFleet, screenshots: Path
) -> None:
    """4 waves of 3, wave 1 done: an abort leaves 9 devices on their version,
    planned or not (the dialog counted 3, the target rows written so far)."""
    site, _ = _site(fleet, 12)
    rid = _draft(live_server, site, 4)
    _start(page, live_server, rid)
    # Wave 1's devices (the scheduler's choice) apply; every other device holds.
    expect(_wave(page, 1)).to_have_attribute("data-updating", "3", timeout=LIVE_MS)
    wave1 = page.locator("#rollout-devices tr[data-wave='1']")
    expect(wave1).to_have_count(3, timeout=TIMEOUT_MS)
    fleet.behave(
        [wave1.nth(k).get_attribute("data-device") or "" for k in range(3)], "apply"
    )
    expect(_wave(page, 2)).to_have_attribute("data-updating", "3", timeout=LIVE_MS)
    # The gate may pass wave 1 before its last device reports; it still counts.
    expect(_wave(page, 1)).to_have_attribute("data-succeeded", "3", timeout=LIVE_MS)
    expect(_wave(page, 4)).to_have_attribute("data-waiting", "3", timeout=TIMEOUT_MS)
    page.click("button[data-action=abort]")
    dialog = page.locator("dialog#abort-dialog")
    expect(dialog).to_be_visible(timeout=TIMEOUT_MS)
    expect(dialog.locator("#abort-affected")).to_have_attribute(
        "data-affected", "9", timeout=TIMEOUT_MS
    )
    expect(dialog).to_contain_text("9 devices not yet updated")
    page.screenshot(path=str(screenshots / "abort-dialog-count.png"), full_page=True)
    dialog.locator("[data-confirm-abort]").click()
    expect(page.locator("#rollout-status")).to_have_attribute(
        "data-status", "aborted", timeout=LIVE_MS
    )
    # The waves it never reached: not started, with the plan's count.
    expect(_wave(page, 3)).to_have_attribute("data-not_started", "3", timeout=LIVE_MS)
    expect(_wave(page, 4)).to_have_attribute(
        "data-not_started", "3", timeout=TIMEOUT_MS
    )
    expect(_wave(page, 2)).to_have_attribute("data-skipped", "3", timeout=TIMEOUT_MS)


def test_retry_is_followed_live(
    page: Page, live_server: LiveServer, fleet: SimFleet, screenshots: Path
) -> None:
    site, ids = _site(fleet, 3)
    fleet.behave(ids[:2], "apply")
    fleet.behave(ids[2:], "fail")
    rid = _draft(live_server, site, 1, min_success_ratio=1.0, max_failures_per_wave=0)
    _start(page, live_server, rid)
    status = page.locator("#rollout-status")
    expect(status).to_have_attribute("data-status", "failed", timeout=LIVE_MS)
    expect(_wave(page, 1)).to_have_attribute("data-failed", "1", timeout=LIVE_MS)
    fleet.behave(ids[2:], "apply")
    page.click("button[data-action=retry]")
    expect(page.locator(".notice")).to_contain_text(
        "retry command was sent", timeout=TIMEOUT_MS
    )
    # No reload from here on: the page follows attempt 2 to its end.
    page.evaluate("window.__same_page = true")
    expect(status).to_have_attribute("data-status", "completed", timeout=LIVE_MS)
    expect(page.locator("#rollout-attempt")).to_contain_text(
        "attempt 2", timeout=TIMEOUT_MS
    )
    # Attempt 2 retried the failed device, and those still updating when
    # attempt 1 failed (released as skipped): every one of them succeeded.
    second = page.locator("#runs tr[data-attempt='2'][data-wave='1']")
    expect(second).to_have_count(1)
    eligible = second.get_attribute("data-eligible")
    assert eligible is not None
    assert int(eligible) >= 1
    expect(second).to_have_attribute("data-succeeded", eligible)
    expect(_wave(page, 1)).to_have_attribute("data-succeeded", "3")
    expect(page.locator("#rollout-header-status")).to_have_attribute(
        "data-status", "completed"
    )
    failed_row = page.locator(f"#rollout-devices tr[data-device='{ids[2]}']")
    expect(failed_row).to_have_attribute("data-state", "succeeded", timeout=LIVE_MS)
    assert page.evaluate("window.__same_page") is True
    page.screenshot(path=str(screenshots / "rollout-retried-live.png"), full_page=True)
