"""Plain tables off a terminal, -o wide|yaml, and names resolved before a request
(the CLI in process against a fake API; the live versions are in
tests/integration/cli/test_for_people.py)."""

from __future__ import annotations

import json
import uuid

import httpx
import yaml

from tests.unit.cli.fakes import Recorder, invoke, json_response, rollout
from xdp47_cli.output import plain_table

ART = str(uuid.UUID(int=1))
POL = str(uuid.UUID(int=2))


def test_plain_table_aligns_on_content_and_keeps_cells_whole() -> None:
    long = "x" * 300
    text = plain_table(["A", "B"], [["1", long], ["22", "two\nlines"]])
    assert text.splitlines() == ["A   B", f"1   {long}", "22  two lines"]


def _api(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == "/api/rollouts":
        return json_response(
            200,
            [
                rollout(name="canary-eu", policy_id=POL),
                rollout(id=str(uuid.UUID(int=8)), name="canary-us", policy_id=None),
            ],
        )
    if path == f"/api/artifacts/{ART}":
        return json_response(200, {"id": ART, "version": "4.0.0"})
    if path == f"/api/policies/{POL}":
        return json_response(200, {"id": POL, "name": "careful"})
    return json_response(404, {"detail": f"nothing at {path}"})


def test_rollouts_ls_names_versions_and_policies_once_each() -> None:
    recorder = Recorder(_api)
    table = invoke(recorder, "rollouts", "ls")
    assert table.exit_code == 0, table.output
    header, eu, us = table.stdout.splitlines()
    assert header.split() == [
        "NAME", "ID", "STATUS", "WAVE", "VERSION", "POLICY", "SELECTOR", "CHANNEL",
        "CREATED",
    ]  # fmt: skip
    assert eu.split()[4:6] == ["4.0.0", "careful"]
    assert us.split()[4:6] == ["4.0.0", "-"]
    assert [r.url.path for r in recorder.requests].count(f"/api/artifacts/{ART}") == 1
    wide = invoke(_api, "rollouts", "ls", "-o", "wide").stdout.splitlines()
    assert {"ARTIFACT", "POLICY", "ID", "REASON"} <= set(wide[0].split())
    assert ART in wide[1].split()
    assert POL in wide[1].split()


def test_yaml_is_the_json_data() -> None:
    as_json = json.loads(invoke(_api, "rollouts", "ls", "-o", "json").stdout)
    as_yaml = yaml.safe_load(invoke(_api, "rollouts", "ls", "-o", "yaml").stdout)
    assert as_yaml == as_json
    assert as_json[0]["artifact_id"] == ART  # the API's objects, no names added


def test_an_ambiguous_prefix_lists_the_candidates_and_sends_nothing() -> None:
    recorder = Recorder(_api)
    result = invoke(recorder, "rollouts", "start", "canary")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: 2 rollouts have names starting with 'canary'; give more of the "
        f"name or the id: canary-eu ({uuid.UUID(int=7)}); "
        f"canary-us ({uuid.UUID(int=8)})\n"
    )
    assert all(r.method == "GET" for r in recorder.requests)
    started = Recorder(
        lambda r: json_response(202, rollout()) if r.method == "POST" else _api(r)
    )
    assert invoke(started, "rollouts", "start", "canary-u").exit_code == 0
    assert started.requests[-1].url.path == f"/api/rollouts/{uuid.UUID(int=8)}:start"
