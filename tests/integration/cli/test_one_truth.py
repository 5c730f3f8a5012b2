"""One truth: for scripted rollouts (completed, partial, failed mid-wave, aborted in
wave 2, running, retried), the REST API's progress JSON, the web UI's data
attributes (timeline bars, per-wave table, runs table, abort dialog) and
``xdp47 rollouts get|runs -o json`` report the same numbers for every wave, and
those numbers are the expected ones."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.cli.conftest import LiveApi
from tests.integration.cli.scripted import Run, Script, apply

pytestmark = pytest.mark.integration

STATES = ("succeeded", "failed", "skipped", "updating", "waiting", "not_started")
A, F, S, U, P = "applied", "failed", "skipped", "assigned", "pending"


def ok(n: int = 3) -> list[tuple[str, str | None]]:
    return [(A, None)] * n


def counts(**over: int) -> dict[str, int]:
    return {s: over.get(s, 0) for s in STATES}


SCENARIOS: dict[str, tuple[Script, list[dict[str, int]], dict[str, Any]]] = {
    "completed": (
        Script(
            "completed",
            4,
            [ok(), ok(), ok(), ok()],
            [Run(w, succeeded=3, outcome="succeeded") for w in (1, 2, 3, 4)],
        ),
        [counts(succeeded=3)] * 4,
        {"not_updated": 0, "nothing_updated": False},
    ),
    "partial": (
        Script(
            "partial",
            2,
            [ok(), [(A, None), (A, None), (F, "apply_failed")]],
            [
                Run(1, succeeded=3, outcome="succeeded"),
                Run(2, succeeded=2, failed=1, outcome="succeeded"),
            ],
            reason="all 2 waves passed; 1 device failed",
        ),
        [counts(succeeded=3), counts(succeeded=2, failed=1)],
        {"not_updated": 0},
    ),
    # The demo's 2.0.0-bad: wave 2 fails on its first failure while two devices
    # are still updating; the scheduler releases those as skipped without moving
    # the run's counters, and waves 3 (written ahead) and 4 never start.
    "failed_mid_wave": (
        Script(
            "failed",
            2,
            [
                ok(),
                [(F, "apply_failed"), (S, "rollout_failed"), (S, "rollout_failed")],
                [(P, None)] * 3,
                None,
            ],
            [
                Run(1, succeeded=3, outcome="succeeded"),
                Run(2, failed=1, outcome="failed"),
            ],
            reason="wave 2 failed",
        ),
        [
            counts(succeeded=3),
            counts(failed=1, skipped=2),
            counts(not_started=3),
            counts(not_started=3),
        ],
        {"not_updated": 0, "run_skipped": {(1, 2): 2}},
    ),
    "aborted_in_wave_2": (
        Script(
            "aborted",
            2,
            [
                ok(),
                [(A, None), (S, "aborted"), (S, "aborted")],
                [(S, "aborted")] * 3,
                None,
            ],
            [
                Run(1, succeeded=3, outcome="succeeded"),
                Run(2, succeeded=1, outcome="aborted"),
            ],
            reason="aborted by ops",
        ),
        [
            counts(succeeded=3),
            counts(succeeded=1, skipped=2),
            counts(not_started=3),
            counts(not_started=3),
        ],
        {"not_updated": 0, "run_skipped": {(1, 2): 2}},
    ),
    # Observation 3: aborting now leaves 9 devices (waves 2, 3 and 4) on their
    # version, though only waves 1 to 3 have target rows.
    "running_in_wave_2": (
        Script(
            "running",
            2,
            [ok(), [(U, None), (U, None), (P, None)], [(P, None)] * 3, None],
            [Run(1, succeeded=3, outcome="succeeded"), Run(2)],
        ),
        [
            counts(succeeded=3),
            counts(updating=3),
            counts(waiting=3),
            counts(waiting=3),
        ],
        {"not_updated": 9, "run_updating": {(1, 2): 3}},
    ),
    "retried": (
        Script(
            "running",
            2,
            [ok(), [(A, None), (U, None), (U, None)], [(P, None)] * 3, None],
            [
                Run(1, succeeded=3, outcome="succeeded"),
                Run(2, succeeded=1, failed=1, outcome="failed"),
                Run(1, attempt=2, eligible=0, outcome="skipped"),
                Run(2, attempt=2, eligible=2),
            ],
            attempt=2,
        ),
        [
            counts(succeeded=3),
            counts(succeeded=1, updating=2),
            counts(waiting=3),
            counts(waiting=3),
        ],
        # Attempt 1's wave 2 ended with one device neither succeeded nor failed:
        # released as skipped when the attempt ended.
        {
            "not_updated": 8,
            "run_skipped": {(1, 2): 1},
            "run_updating": {(2, 2): 2},
        },
    ),
}


class _Attrs(HTMLParser):
    """Data attributes of the per-wave rows, the bars and the runs rows."""

    def __init__(self) -> None:
        super().__init__()
        self.table: dict[int, dict[str, int]] = {}
        self.bars: dict[int, dict[str, int]] = {}
        self.runs: dict[tuple[int, int], dict[str, int]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.removeprefix("data-"): v for k, v in attrs if k.startswith("data-")}
        if "wave" not in a:
            return
        nums = {k: int(v) for k, v in a.items() if v and v.isdigit()}
        if tag == "tr" and "attempt" in a:
            self.runs[(nums["attempt"], nums["wave"])] = nums
        elif tag == "tr" and "total" in a:
            self.table[nums["wave"]] = nums
        elif tag == "g":
            self.bars[nums["wave"]] = nums


def _ui(api: LiveApi, rid: str) -> tuple[_Attrs, int]:
    with httpx.Client(base_url=api.url, follow_redirects=False) as ui:
        page = ui.get("/ui/signin").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf
        signed = ui.post("/ui/signin", data={"token": api.token, "csrf_token": csrf[1]})
        assert signed.status_code == 303, signed.text
        html = ui.get(f"/ui/rollouts/{rid}")
        assert html.status_code == 200, html.text
        parsed = _Attrs()
        parsed.feed(html.text)
        dialog = ui.get(f"/ui/rollouts/{rid}/abort")
        found = re.search(r'data-affected="(\d+)"', dialog.text)
        assert found, dialog.text
        return parsed, int(found[1])


def _waves_of(progress: dict[str, Any]) -> list[dict[str, int]]:
    return [{s: w["counts"][s] for s in STATES} for w in progress["waves"]]


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_every_surface_reports_the_same_numbers(
    name: str, live_api: LiveApi, xdp47, pool: asyncpg.Pool[Any]
) -> None:
    script, expected, facts = SCENARIOS[name]
    rid = str(await apply(pool, live_api, script))
    login = xdp47(
        "login", "--url", live_api.url, "--token", live_api.token,
        "--tenant", live_api.tenant,
    )  # fmt: skip
    assert login.code == 0, login.stderr

    headers = {"Authorization": f"Bearer {live_api.token}"}
    async with httpx.AsyncClient(base_url=live_api.url, headers=headers) as client:
        api = await client.get(f"/api/rollouts/{rid}/progress")
    assert api.status_code == 200, api.text
    progress = api.json()
    got = xdp47("rollouts", "get", rid, "-o", "json")
    assert got.code == 0, got.stderr
    cli = json.loads(got.stdout)["progress"]
    cli_runs = json.loads(xdp47("rollouts", "runs", rid, "-o", "json").stdout)
    ui, affected = _ui(live_api, rid)

    assert _waves_of(progress) == expected
    assert _waves_of(cli) == expected
    for n, want in enumerate(expected, start=1):
        for surface in (ui.table[n], ui.bars[n]):
            assert {s: surface[s] for s in STATES} == want, (name, n, surface)
            assert surface["total"] == sum(want.values())
    assert progress["not_updated"] == cli["not_updated"] == facts["not_updated"]
    if script.status == "running":
        assert affected == facts["not_updated"]
    if "nothing_updated" in facts:
        assert progress["nothing_updated"] is facts["nothing_updated"]

    runs = {(r["attempt"], r["wave"]): r for r in progress["runs"]}
    assert runs == {(r["attempt"], r["wave"]): r for r in cli_runs}
    assert runs == {(r["attempt"], r["wave"]): r for r in cli["runs"]}
    assert set(ui.runs) == set(runs)
    for key, run in runs.items():
        for field in ("eligible", "succeeded", "failed", "skipped", "updating"):
            assert ui.runs[key][field] == run[field], (name, key, field)
    for key, n in facts.get("run_skipped", {}).items():
        assert runs[key]["skipped"] == n
        assert runs[key]["updating"] == 0
    for key, n in facts.get("run_updating", {}).items():
        assert runs[key]["updating"] == n
