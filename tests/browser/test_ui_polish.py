"""The small things a person notices, in a real browser: a 390 px phone scrolls no
page sideways and reads the wave timeline at a normal text size; the dark colour
scheme is dark; the API docs render from this server alone; unknown and
malformed addresses get the UI's error page; a reason names the token that acted;
revoking a token asks first, and warns when it is the session's own.

Screenshots of each go to artifacts/screenshots/ (``narrow-*``, ``dark-*``,
``api-docs``, ``error-*``, ``revoke-*``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import TIMEOUT_MS, LiveServer
from tests.browser.support import SimFleet, mint
from tests.browser.test_operator_ui import LIVE_MS, Watch, shot, sign_in
from tests.support.processes import wait_until
from xdp47_common.models import ALL_SCOPES

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 900}
PAGES = ("rollouts", "devices", "artifacts", "policies", "tenants", "system")
# The smallest text a person reads comfortably on a phone, in CSS pixels.
READABLE_PX = 11.0


@pytest.fixture(scope="module")
def fleet(live_server: LiveServer) -> Iterator[SimFleet]:
    sim = SimFleet(live_server)
    sim.start()
    yield sim
    sim.stop()
    assert sim.errors == [], sim.errors[:5]


def _api(server: LiveServer, method: str, path: str, **kw: Any) -> Any:
    answer = httpx.request(
        method,
        f"{server.url}{path}",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
        **kw,
    )
    assert answer.status_code < 300, answer.text
    return answer.json()


def _rollout(server: LiveServer, fleet: SimFleet, site: str, *, start: bool) -> str:
    """A rollout over four fresh devices of ``site`` in two waves, started once
    they are all online (an offline device would be skipped)."""
    fleet.claim([f"{site}-{n}" for n in range(1, 5)], {"site": site})

    def online() -> None:
        found = _api(
            server,
            "GET",
            "/api/devices",
            params={"label": f"site={site}", "status": "online"},
        )
        assert len(found) == 4, found

    wait_until(online, within=LIVE_MS / 1000)
    artifact = _api(
        server,
        "POST",
        "/api/artifacts",
        json={
            "tenant": server.tenant,
            "uri": f"https://releases.example.com/{site}.tar",
            "sha256": "7a" * 32,
            "version": f"3.0.0-{site}-with-a-rather-long-version-name",
        },
    )
    rollout = _api(
        server,
        "POST",
        "/api/rollouts",
        json={
            "tenant": server.tenant,
            "artifact_id": artifact["id"],
            "name": f"{site} rollout with a name long enough to wrap on a phone",
            "selector": {"site": site},
            "wave_percentages": [50, 50],
        },
    )
    rollout_id = str(rollout["id"])
    if start:
        _api(server, "POST", f"/api/rollouts/{rollout_id}:start")

        def running() -> None:
            got = _api(server, "GET", f"/api/rollouts/{rollout_id}")
            assert got["status"] == "running", got["status"]

        wait_until(running, within=LIVE_MS / 1000)
    return rollout_id


def _context_page(
    chromium: Browser, server: LiveServer, **options: Any
) -> tuple[Page, Watch]:
    context = chromium.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(server.url)
    watch.attach(page)
    return page, watch


def _no_sideways_scroll(page: Page, where: str) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert widths[0] <= widths[1], f"{where} scrolls sideways: {widths}"


def _timeline_text_px(page: Page) -> list[float]:
    """The size each timeline text is drawn at: its font size times the SVG's
    scale (a scaled viewBox shrinks text that its computed style still calls
    13 px)."""
    sizes: list[float] = page.evaluate(
        """() => Array.from(document.querySelectorAll('figure.timeline g.wave text'))
            .map(t => t.getScreenCTM().a * parseFloat(getComputedStyle(t).fontSize))"""
    )
    return sizes


def test_phone_width_and_dark_scheme(
    chromium: Browser, live_server: LiveServer, fleet: SimFleet, screenshots: Path
) -> None:
    server = live_server
    rollout_id = _rollout(server, fleet, "narrow", start=True)
    page, watch = _context_page(chromium, server, viewport=PHONE)
    sign_in(page, server, server.token)
    for name in PAGES:
        page.goto(f"{server.url}/ui/{name}")
        expect(page.locator("h1")).to_be_visible()
        for create in page.locator("details.create > summary").all():
            create.click()  # the forms, open, must fit too
        _no_sideways_scroll(page, name)
        shot(page, screenshots, f"narrow-{name}", watch)
    page.goto(f"{server.url}/ui/rollouts/{rollout_id}")
    expect(page.locator("g.wave[data-wave='1']")).to_have_attribute(
        "data-updating", "2", timeout=LIVE_MS
    )
    _no_sideways_scroll(page, "the rollout page")
    sizes = _timeline_text_px(page)
    assert len(sizes) >= 6, sizes  # label, count and times of two waves
    assert min(sizes) >= READABLE_PX, sizes
    shot(page, screenshots, "narrow-rollout", watch)
    watch.check()
    page.context.close()

    page, watch = _context_page(chromium, server, viewport=LAPTOP, color_scheme="dark")
    sign_in(page, server, server.token)
    for path, name in ((f"rollouts/{rollout_id}", "rollout"), ("tenants", "tenants")):
        page.goto(f"{server.url}/ui/{path}")
        expect(page.locator("h1")).to_be_visible()
        colours = page.evaluate(
            """() => {
              const lum = c => { const [r, g, b] = c.match(/\\d+/g).map(Number);
                return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255; };
              const style = e => getComputedStyle(document.querySelector(e));
              return { page: lum(style('body').backgroundColor),
                       card: lum(style('.card').backgroundColor),
                       ink: lum(style('h1').color) };
            }"""
        )
        assert colours["page"] < 0.2, colours
        assert colours["card"] < 0.2, colours
        assert colours["ink"] > 0.7, colours
        shot(page, screenshots, f"dark-{name}", watch)
    watch.check()
    page.context.close()


def test_api_docs_and_error_pages(
    chromium: Browser, live_server: LiveServer, screenshots: Path
) -> None:
    server = live_server
    page, watch = _context_page(chromium, server, viewport=LAPTOP)
    page.goto(f"{server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("XDP47 API")
    expect(page.locator(".opblock").first).to_be_visible()
    shot(page, screenshots, "api-docs", watch)
    page.goto(f"{server.url}/redoc")
    expect(page.locator("h1").first).to_contain_text("XDP47 API")
    shot(page, screenshots, "api-redoc", watch)
    # ReDoc's sidebar asks for its vendor's logo from a CDN; the page's
    # Content-Security-Policy blocks it before it leaves the browser (and ReDoc
    # hides the image). Nothing else may go elsewhere.
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert [u for u in watch.urls if u.startswith("https:")] in ([], [logo])
    assert all(logo in e and "has been blocked" in e for e in watch.errors)
    # its search worker is a blob: of this origin, which is local too
    watch.urls = [
        u for u in watch.urls if u != logo and not u.startswith(f"blob:{server.url}/")
    ]
    watch.errors.clear()
    watch.check()

    sign_in(page, server, server.token)
    for path, status, name in (
        ("/ui/rollouts/not-a-uuid", 422, "error-malformed"),
        ("/ui/nope", 404, "error-unknown"),
        (f"/ui/rollouts/{uuid.uuid4()}", 404, "error-missing"),
    ):
        answer = page.goto(f"{server.url}{path}")
        assert answer is not None
        assert answer.status == status, path
        expect(page.locator("#error-page")).to_have_attribute(
            "data-status", str(status)
        )
        expect(page.locator("header nav")).to_contain_text("Rollouts")
        shot(page, screenshots, name, watch)
    # The browser logs the error answers themselves; nothing else may fail.
    assert all("404" in e or "422" in e for e in watch.errors), watch.errors
    watch.errors.clear()
    watch.check()
    page.context.close()


def test_token_names_and_revoke_confirmation(
    chromium: Browser, live_server: LiveServer, fleet: SimFleet, screenshots: Path
) -> None:
    server = live_server
    admin = mint(server, set(ALL_SCOPES), name="browser-admin")
    mint(server, set(ALL_SCOPES), name="browser-victim")
    rollout_id = _rollout(server, fleet, "names", start=True)
    page, watch = _context_page(chromium, server, viewport=LAPTOP)
    sign_in(page, server, admin)
    expect(page.locator("header .token")).to_have_text("browser-admin")

    # an abort sent by this token: the reason names it
    page.goto(f"{server.url}/ui/rollouts/{rollout_id}")
    page.click("button[data-action=abort]")
    page.locator("dialog#abort-dialog [data-confirm-abort]").click()
    expect(page.locator("#rollout-status")).to_have_attribute(
        "data-status", "aborted", timeout=LIVE_MS
    )
    expect(page.locator("#status-reason")).to_have_text(
        "aborted by token “browser-admin”", timeout=LIVE_MS
    )
    expect(page.locator("#runs")).to_contain_text("token “browser-admin”")
    expect(page.locator("body")).not_to_contain_text("token:")
    shot(page, screenshots, "token-name-reason", watch)

    page.goto(f"{server.url}/ui/tenants")
    victim = page.locator("tr[data-token]", has_text="browser-victim")
    # Cancel leaves the token alone
    victim.locator("button[data-revoke]").click()
    dialog = page.locator("dialog#revoke-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Revoke token “browser-victim”?")
    expect(dialog.locator("#revoke-own")).to_have_count(0)
    shot(page, screenshots, "revoke-dialog", watch)
    dialog.locator("[data-close-dialog]").click()
    expect(dialog).to_have_count(0)
    expect(victim).to_contain_text("active")
    # confirmed, it is revoked
    victim.locator("button[data-revoke]").click()
    page.locator("dialog#revoke-dialog [data-confirm-revoke]").click()
    expect(page.locator("tr[data-token]", has_text="browser-victim")).to_contain_text(
        "revoked"
    )
    # the session's own token: a warning, and confirming signs out
    own = page.locator("tr[data-token]", has_text="browser-admin")
    expect(own.locator("[data-own-token]")).to_be_visible()
    own.locator("button[data-revoke]").click()
    dialog = page.locator("dialog#revoke-dialog")
    expect(dialog.locator("#revoke-own")).to_contain_text(
        "the token you are signed in with"
    )
    shot(page, screenshots, "revoke-own-dialog", watch)
    dialog.locator("[data-confirm-revoke]").click()
    expect(page).to_have_url(f"{server.url}/ui/signin?reason=revoked")
    watch.check()
    page.context.close()
