"""List commands: pagination, filters in the query, and output formats."""

from __future__ import annotations

import json

import httpx

from tests.unit.cli.fakes import Recorder, invoke, json_response, tenant

IDS = [f"t-{i:02d}" for i in range(7)]


def paged(request: httpx.Request) -> httpx.Response:
    """Tenants in pages of ``limit`` (max 3 here), announced by X-Next-Cursor."""
    limit = min(int(request.url.params.get("limit", "100")), 3)
    start = int(request.url.params.get("cursor", "0"))
    page = IDS[start : start + limit]
    headers = {}
    if start + limit < len(IDS):
        headers["X-Next-Cursor"] = str(start + limit)
    return json_response(200, [tenant(i) for i in page], **headers)


def test_all_follows_every_page_and_json_is_the_api_objects() -> None:
    result = invoke(paged, "tenants", "ls", "--all", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [tenant(i) for i in IDS]


def test_limit_stops_after_that_many_items_across_pages() -> None:
    recorder = Recorder(paged)
    result = invoke(recorder, "tenants", "ls", "--limit", "4", "-o", "json")
    assert [t["id"] for t in json.loads(result.stdout)] == IDS[:4]
    assert [r.url.params.get("limit") for r in recorder.requests] == ["4", "1"]


def test_link_header_is_followed_without_x_next_cursor() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("cursor") == "abc":
            return json_response(200, [tenant("b")])
        link = '<http://api.test/api/tenants?limit=1000&cursor=abc>; rel="next"'
        return json_response(200, [tenant("a")], Link=link)

    result = invoke(handler, "tenants", "ls", "--all", "-o", "json")
    assert [t["id"] for t in json.loads(result.stdout)] == ["a", "b"]


def test_table_output_has_headers_and_rows() -> None:
    result = invoke(paged, "tenants", "ls", "--limit", "2")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == IDS[:2]


def test_empty_table_says_none() -> None:
    result = invoke(lambda r: json_response(200, []), "policies", "ls")
    assert result.stdout.strip() == "(none)"


def test_device_filters_become_query_parameters() -> None:
    recorder = Recorder(
        lambda r: (
            json_response(200, {"selector": "region=eu", "count": 3})
            if r.url.path.endswith(":count")
            else json_response(200, [])
        )
    )
    result = invoke(
        recorder,
        "devices",
        "ls",
        "--label",
        "region=eu",
        "-l",
        "model=k1,store=7",
        "--status",
        "online",
        "--version",
        "1.2.0",
        "--channel",
        "beta",
        "-q",
        "dev-",
    )
    assert result.exit_code == 0, result.output
    params = recorder.requests[0].url.params
    assert params.get_list("label") == ["region=eu,model=k1,store=7"]
    assert params["status"] == "online"
    assert params["version"] == "1.2.0"
    assert params["channel"] == "beta"
    assert params["q"] == "dev-"
    # Then the count of what the selector matches, shown under the table.
    assert recorder.requests[1].url.path == "/api/devices:count"
    assert recorder.requests[1].url.params["selector"] == "region=eu,model=k1,store=7"
    assert "3 devices match region=eu,model=k1,store=7" in result.output


def test_an_answer_that_is_not_the_model_is_one_line() -> None:
    result = invoke(lambda r: json_response(200, [{"id": 1}]), "tenants", "ls")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: unexpected answer from the API (Tenant.")
