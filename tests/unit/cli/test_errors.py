"""API errors and transport failures are one line on stderr and a non-zero exit."""

from __future__ import annotations

import httpx
import pytest

from tests.unit.cli.fakes import TENANT, invoke, json_response


def test_validation_error_is_one_line_with_status_and_field() -> None:
    detail = "body.sha256: String should match pattern '^[0-9a-fA-F]{64}$'"

    def handler(request: httpx.Request) -> httpx.Response:
        return json_response(422, {"detail": detail, "errors": []})

    result = invoke(
        handler,
        "--tenant",
        TENANT,
        "artifacts",
        "create",
        "--uri",
        "https://x/a.bin",
        "--sha256",
        "nothex",
    )
    assert result.exit_code == 1
    assert result.stderr == f"error: 422 {detail}\n"
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("status", "body", "line"),
    [
        (401, {"detail": "invalid token"}, "error: 401 invalid token"),
        (403, {"detail": "needs scope 'tenants:write'"}, "error: 403 needs scope"),
        (409, {"detail": "id: tenant 'x' already exists"}, "error: 409 id: tenant"),
        (503, {"detail": "database unavailable"}, "error: 503 database unavailable"),
    ],
)
def test_error_statuses_render_the_detail(status: int, body: object, line: str) -> None:
    result = invoke(lambda r: json_response(status, body), "tenants", "create", "x")
    assert result.exit_code == 1
    assert result.stderr.startswith(line)
    assert result.stderr.count("\n") == 1


def test_non_json_error_body_still_one_line() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>\nbad gateway\n</html>")

    result = invoke(handler, "tenants", "ls")
    assert result.exit_code == 1
    assert result.stderr == "error: 502 <html>\n"


def test_connection_refused_names_the_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    result = invoke(handler, "--url", "http://127.0.0.1:9", "devices", "ls")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: cannot connect to the API at http://127.0.0.1:9"
    )
    assert result.stderr.count("\n") == 1


def test_no_context_and_no_url_explains_how_to_log_in() -> None:
    result = invoke(lambda r: json_response(200, []), "devices", "ls", url="")
    assert result.exit_code == 1
    assert "xdp47 login" in result.stderr


def test_a_rollout_named_by_nothing_is_one_line() -> None:
    result = invoke(lambda r: json_response(200, []), "rollouts", "get", "nope")
    assert result.exit_code == 1
    assert "no rollout whose name starts with 'nope'" in result.stderr


def test_create_without_tenant_says_how_to_give_one() -> None:
    result = invoke(lambda r: json_response(201, {}), "policies", "create", "p")
    assert result.exit_code == 1
    assert "--tenant" in result.stderr
