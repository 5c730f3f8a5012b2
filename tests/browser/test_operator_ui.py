"""The operator UI in a real browser (Debian's chromium, headless): sign in,
register an artifact and upload another through the form, create a policy and a
rollout, start it, watch the wave timeline and the page header change as
simulated devices report, abort a second rollout through its
confirmation dialog; a read-only token sees no write controls; another tenant's
objects never appear. Every page: no console error, no request to another host,
and a screenshot under artifacts/screenshots/.

Nothing is faked behind the UI: the devices are claimed through the API and
heartbeat through the real ingest, and the real scheduler starts, judges and
advances the waves; the test only decides what each device does when told to
update (hold, apply, fail).
"""

from __future__ import annotations

import hashlib
import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    FilePayload,
    Page,
    Request,
    expect,
)

from tests.browser.conftest import TIMEOUT_MS, LiveServer
from tests.browser.support import (
    SimFleet,
    make_tenant_with_artifact,
    mint,
    rollout_id_by_name,
    wave_members,
)
from tests.support.processes import wait_until
from xdp47_common.models import READ_SCOPES

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SHA = "5e" * 32
UPLOADED = random.Random(47).randbytes(200_000)  # a file for the upload form
# The timeline follows the real scheduler: an event re-renders it at once, and a
# missed one is made up by the page's periodic refresh (every 5 s), so waits on
# live changes get more than Playwright's 5 s default.
LIVE_MS = 20_000
PAGES = (
    "devices",
    "artifacts",
    "policies",
    "rollouts",
    "tenants",
    "system",
)


@dataclass
class Watch:
    """Console errors and request URLs of one page."""

    origin: str
    errors: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    seen_html: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(message.text)

        def on_request(request: Request) -> None:
            self.urls.append(request.url)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("request", on_request)

    def check(self) -> None:
        assert self.errors == [], self.errors
        foreign = [
            u
            for u in self.urls
            if not (u.startswith(self.origin + "/") or u.startswith("data:"))
        ]
        assert foreign == [], foreign


@pytest.fixture
def watched(chromium: Browser, live_server: LiveServer) -> Iterator[tuple[Page, Watch]]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(live_server.url)
    watch.attach(page)
    yield page, watch
    context.close()


@pytest.fixture
def fleet(live_server: LiveServer) -> Iterator[SimFleet]:
    """Simulated devices heartbeating through ingest for the test's duration."""
    sim = SimFleet(live_server)
    sim.start()
    yield sim
    sim.stop()
    assert sim.errors == [], sim.errors[:5]


@pytest.fixture(scope="module")
def other_tenant(live_server: LiveServer) -> str:
    """Another tenant with an artifact whose version must never show."""
    other = f"other-{uuid.uuid4().hex[:8]}"
    make_tenant_with_artifact(live_server, other, f"{other}-secret-version")
    return other


def sign_in(page: Page, server: LiveServer, token: str) -> None:
    page.goto(f"{server.url}/ui/signin")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    expect(page.locator("header .tenant")).to_have_text(server.tenant)


def shot(page: Page, folder: Path, name: str, watch: Watch) -> None:
    watch.seen_html.append(page.content())
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_operator_flow(
    watched: tuple[Page, Watch],
    live_server: LiveServer,
    screenshots: Path,
    other_tenant: str,
    fleet: SimFleet,
) -> None:
    page, watch = watched
    server = live_server
    devices = [f"lab-{n}" for n in range(1, 10)]
    annex = [f"annex-{n}" for n in range(1, 4)]
    fleet.claim(devices, {"site": "lab"})
    fleet.claim(annex, {"site": "annex"})

    page.goto(f"{server.url}/ui/signin")
    page.fill("input[name=token]", "xdp47t_not-a-token")
    page.click("button[type=submit]")
    expect(page.locator("#signin-error")).to_contain_text("Sign-in failed")
    # The browser logs the 401 answer of a refused sign-in; nothing else may.
    assert all("401" in e for e in watch.errors), watch.errors
    watch.errors.clear()
    shot(page, screenshots, "signin", watch)
    sign_in(page, server, server.token)

    # artifacts: one registered by URI, one uploaded through the form
    page.goto(f"{server.url}/ui/artifacts")
    page.click("summary:has-text('Register an artifact')")
    register = page.locator("#register-form")
    register.locator("input[name=uri]").fill(
        "https://releases.example.com/app-2.0.0.tar"
    )
    register.locator("input[name=sha256]").fill(SHA)
    register.locator("input[name=version]").fill("2.0.0-browser")
    register.locator("textarea[name=metadata]").fill(
        '{"notes": "from the browser test"}'
    )
    register.locator("button:has-text('Register artifact')").click()
    expect(page.locator(".notice")).to_contain_text("registered")
    expect(page.locator("table")).to_contain_text("2.0.0-browser")
    upload_artifact(page, server, watch, screenshots)
    shot(page, screenshots, "artifacts", watch)

    page.goto(f"{server.url}/ui/policies")
    page.click("summary:has-text('Create a policy')")
    page.fill("input[name=name]", "browser-policy")
    page.fill("input[name=min_success_ratio]", "0.5")
    # One failed device per wave is tolerated; the ratio decides.
    page.fill("input[name=max_failures_per_wave]", "1")
    page.click("button:has-text('Create policy')")
    expect(page.locator("table")).to_contain_text("browser-policy")
    shot(page, screenshots, "policies", watch)

    # a rollout over the lab devices, started; they hold the update for now
    create_rollout(page, server, "first-rollout", "site=lab", "50, 50")
    expect(page.locator("#rollout-status")).to_have_attribute("data-status", "draft")
    header = page.locator("#rollout-header-status")
    expect(header).to_have_text("draft")
    expect(page.locator("#rollout-started")).to_have_text("—")
    expect(page.locator("#plan")).to_be_visible()
    shot(page, screenshots, "rollout-draft", watch)
    page.click("button[data-action=start]")
    expect(page.locator(".notice")).to_contain_text("start command was sent")
    # the notice is one-shot: its query parameter leaves the address at once
    expect(page).not_to_have_url(re.compile(r"sent="))
    first = rollout_id_by_name(server, "first-rollout")

    # the scheduler starts wave 1: its devices are told to update ...
    expect(page.locator("#rollout-status")).to_have_attribute(
        "data-status", "running", timeout=LIVE_MS
    )
    # ... and the header follows without a reload: running, started, no preview
    expect(header).to_contain_text("running", timeout=LIVE_MS)
    expect(page.locator("#rollout-started")).not_to_have_text("—", timeout=LIVE_MS)
    expect(page.locator("#plan")).to_be_hidden(timeout=LIVE_MS)
    wave1: list[str] = []

    def wave_one_started() -> None:
        wave1[:] = wave_members(server, first, 1)
        assert 0 < len(wave1) < len(devices), wave1

    wait_until(wave_one_started, within=20)
    wave_one = page.locator("g.wave[data-wave='1']")
    expect(wave_one).to_have_attribute(
        "data-updating", str(len(wave1)), timeout=LIVE_MS
    )
    # ... and report: all but one apply it, one fails
    fleet.behave(wave1[:-1], "apply")
    fleet.behave(wave1[-1:], "fail")
    expect(wave_one).to_have_attribute(
        "data-succeeded", str(len(wave1) - 1), timeout=LIVE_MS
    )
    expect(wave_one).to_have_attribute("data-failed", "1", timeout=LIVE_MS)
    expect(page.locator("#runs")).to_contain_text(
        f"wave 1: {len(wave1) - 1} of {len(wave1)} succeeded", timeout=LIVE_MS
    )
    # the gate passed wave 1 and the scheduler moved on to wave 2
    wave2 = sorted(set(devices) - set(wave1))
    wave_two = page.locator("g.wave[data-wave='2']")
    expect(wave_two).to_have_attribute(
        "data-updating", str(len(wave2)), timeout=LIVE_MS
    )
    expect(page.locator("#gate-verdict")).to_contain_text("wave 2", timeout=LIVE_MS)
    shot(page, screenshots, "rollout-running", watch)
    fleet.behave(wave2, "apply")
    expect(wave_two).to_have_attribute(
        "data-succeeded", str(len(wave2)), timeout=LIVE_MS
    )
    # Every wave passed its gate, but one device failed: partial, not completed.
    expect(page.locator("#rollout-status")).to_have_attribute(
        "data-status", "partial", timeout=LIVE_MS
    )
    expect(page.locator("#gate-verdict")).to_contain_text(
        f"wave 2: {len(wave2)} of {len(wave2)} succeeded", timeout=LIVE_MS
    )
    # The page was not reloaded since the start: only the live refresh can have
    # brought the header from running to partial and set the finish time.
    expect(header).to_have_attribute("data-status", "partial", timeout=LIVE_MS)
    expect(header).to_contain_text("partial")
    expect(page.locator("#rollout-finished")).not_to_have_text("—", timeout=LIVE_MS)
    shot(page, screenshots, "rollout-completed", watch)
    page.reload()
    expect(page.locator("h1")).to_contain_text("first-rollout")
    expect(page.locator(".notice")).to_have_count(0)  # not shown a second time

    # a second rollout over the annex devices, which hold the update: aborted
    create_rollout(page, server, "second-rollout", "site=annex", "")
    page.click("button[data-action=start]")
    expect(page.locator("#rollout-status")).to_have_attribute(
        "data-status", "running", timeout=LIVE_MS
    )
    expect(page.locator("g.wave[data-wave='1']")).to_have_attribute(
        "data-updating", "3", timeout=LIVE_MS
    )
    page.click("button[data-action=abort]")
    dialog = page.locator("dialog#abort-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#abort-affected")).to_have_attribute("data-affected", "3")
    expect(dialog).to_contain_text("3 devices not yet updated")
    shot(page, screenshots, "abort-dialog", watch)
    dialog.locator("[data-confirm-abort]").click()
    expect(page.locator(".notice")).to_contain_text("abort command was sent")
    expect(page.locator("#rollout-status")).to_have_attribute(
        "data-status", "aborted", timeout=LIVE_MS
    )

    for name in PAGES:
        page.goto(f"{server.url}/ui/{name}")
        expect(page.locator("h1")).to_be_visible()
        shot(page, screenshots, name, watch)
    expect(page.locator("#queues")).to_contain_text("scheduler.commands")

    # The dev token holds tenants:write (platform operator), so the tenants page
    # lists every tenant by design; no other page, and no object, ever shows.
    for html in watch.seen_html:
        assert f"{other_tenant}-secret-version" not in html
        if 'aria-current="page">Tenants' not in html:
            assert other_tenant not in html
    watch.check()


def upload_artifact(
    page: Page, server: LiveServer, watch: Watch, screenshots: Path
) -> None:
    """Upload a file through the form; it is listed with the SHA256 and size of
    its bytes, and the API serves those bytes back."""
    page.click("summary:has-text('Upload an artifact')")
    form = page.locator("#upload-form")
    form.locator("input[name=version]").fill("2.1.0-upload")
    form.locator("textarea[name=metadata]").fill('{"notes": "uploaded"}')
    # No file chosen: the form comes back (422) with the reason and the fields.
    form.locator("button:has-text('Upload artifact')").click()
    expect(page.locator("#file-error")).to_contain_text("choose a file")
    expect(form.locator("input[name=version]")).to_have_value("2.1.0-upload")
    # The browser logs the 422 answer; nothing else may.
    assert all("422" in e for e in watch.errors), watch.errors
    watch.errors.clear()
    shot(page, screenshots, "artifacts-upload-error", watch)
    # A file over the limit is refused before it is sent (the limit is lowered
    # in the page: the server's own is far above this file).
    form.evaluate("f => { f.dataset.maxBytes = '1000'; }")
    form.locator("input[type=file]").set_input_files(
        files=FilePayload(name="big.bin", mimeType="x/y", buffer=UPLOADED)
    )
    form.locator("button:has-text('Upload artifact')").click()
    expect(form.locator("[data-file-too-large]")).to_contain_text("more than the limit")
    form.evaluate("f => { f.dataset.maxBytes = '1000000'; }")
    form.locator("input[type=file]").set_input_files(
        files=FilePayload(
            name="app-2.1.0.tar", mimeType="application/x-tar", buffer=UPLOADED
        )
    )
    form.locator("button:has-text('Upload artifact')").click()
    row = page.locator("tr[data-artifact]", has_text="2.1.0-upload")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(hashlib.sha256(UPLOADED).hexdigest()[:12])
    expect(row).to_contain_text(str(len(UPLOADED)))
    artifact_id = row.get_attribute("data-artifact")
    assert artifact_id
    expect(page.locator(".notice")).to_contain_text(artifact_id)
    expect(page).not_to_have_url(re.compile(r"created="))
    content = httpx.get(
        f"{server.url}/api/artifacts/{artifact_id}/content",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    )
    assert content.status_code == 200, content.text
    assert content.content == UPLOADED
    page.reload()  # the notice was one-shot
    expect(page.locator("tr[data-artifact]", has_text="2.1.0-upload")).to_have_count(1)
    expect(page.locator(".notice")).to_have_count(0)


def create_rollout(
    page: Page, server: LiveServer, name: str, selector: str, percentages: str
) -> None:
    page.goto(f"{server.url}/ui/rollouts")
    page.click("summary:has-text('Create a rollout')")
    page.fill("input[name=name]", name)
    option = page.locator("select[name=artifact_id] option", has_text="2.0.0-browser")
    page.select_option("select[name=artifact_id]", value=option.get_attribute("value"))
    page.select_option("select[name=policy_id]", label="browser-policy")
    page.fill("input[name=percentages]", percentages)
    page.fill("input[name=waves]", "" if percentages else "1")
    page.fill("textarea[name=selector]", selector)
    page.click("button:has-text('Create draft')")
    expect(page.locator("h1")).to_contain_text(name)


def test_read_only_token_sees_no_write_controls(
    watched: tuple[Page, Watch],
    live_server: LiveServer,
    screenshots: Path,
    other_tenant: str,
) -> None:
    page, watch = watched
    sign_in(page, live_server, mint(live_server, set(READ_SCOPES)))
    for name in PAGES:
        page.goto(f"{live_server.url}/ui/{name}")
        expect(page.locator("h1")).to_be_visible()
        # the sign-out form is the only form that posts
        expect(page.locator("form[method=post]")).to_have_count(1)
        expect(page.locator("[data-action]")).to_have_count(0)
        expect(page.locator("details.create")).to_have_count(0)
        shot(page, screenshots, f"read-only-{name}", watch)
    rollout_links = page.locator("a[href^='/ui/rollouts/']")
    page.goto(f"{live_server.url}/ui/rollouts")
    if rollout_links.count():
        rollout_links.first.click()
        expect(page.locator("[data-action]")).to_have_count(0)
        shot(page, screenshots, "read-only-rollout", watch)
    for html in watch.seen_html:
        assert other_tenant not in html
    watch.check()
