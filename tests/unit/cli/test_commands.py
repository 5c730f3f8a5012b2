"""Request bodies the commands send, and what they print."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.cli.fakes import (
    NOW,
    TENANT,
    Recorder,
    invoke,
    json_response,
    rollout,
    tenant,
)

ARTIFACT: dict[str, Any] = {
    "id": str(uuid.UUID(int=1)),
    "tenant": TENANT,
    "uri": "https://cdn.test/a.bin",
    "sha256": "0" * 64,
    "size": 5,
    "type": "application",
    "version": "1.0.0",
    "signature": None,
    "metadata": {},
    "created_at": NOW,
}
TOKEN_ROW: dict[str, Any] = {
    "id": str(uuid.UUID(int=3)),
    "tenant": TENANT,
    "name": "ci",
    "prefix": "xdp47t_abcdef",
    "scopes": ["rollouts:read"],
    "created_at": NOW,
    "expires_at": None,
    "revoked_at": None,
    "last_used_at": None,
}


def echo(status: int, extra: dict[str, Any] | None = None):
    """Answer with the posted body merged over a template."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        return json_response(status, (extra or {}) | body)

    return handler


def test_artifact_from_a_file_sends_its_sha256_and_size(tmp_path: Path) -> None:
    data = b"hello world\n" * 1000
    path = tmp_path / "app.bin"
    path.write_bytes(data)
    recorder = Recorder(echo(201, ARTIFACT))
    result = invoke(
        recorder,
        "--tenant",
        TENANT,
        "artifacts",
        "create",
        "--file",
        str(path),
        "--uri",
        "https://cdn.test/app.bin",
        "--version",
        "2.0.0",
        "--meta",
        "build=42",
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.output
    assert list(recorder.bodies()) == [
        {
            "tenant": TENANT,
            "uri": "https://cdn.test/app.bin",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "version": "2.0.0",
            "metadata": {"build": "42"},
        }
    ]
    assert json.loads(result.stdout)["sha256"] == hashlib.sha256(data).hexdigest()


def test_artifact_file_and_a_different_sha256_disagree(tmp_path: Path) -> None:
    path = tmp_path / "app.bin"
    path.write_bytes(b"x")
    result = invoke(
        echo(201, ARTIFACT),
        "--tenant",
        TENANT,
        "artifacts",
        "create",
        "--file",
        str(path),
        "--uri",
        "https://x/y",
        "--sha256",
        "f" * 64,
    )
    assert result.exit_code == 1
    assert "does not match" in result.stderr


def test_artifact_upload_without_the_endpoint_says_pass_uri(tmp_path: Path) -> None:
    path = tmp_path / "app.bin"
    path.write_bytes(b"x")
    handler = lambda r: json_response(404, {"detail": "Not Found"})  # noqa: E731
    result = invoke(handler, "--tenant", TENANT, "artifacts", "create", "-f", str(path))
    assert result.exit_code == 1
    assert "no upload endpoint" in result.stderr
    assert "--uri" in result.stderr


def test_artifact_needs_a_source() -> None:
    result = invoke(echo(201), "--tenant", TENANT, "artifacts", "create")
    assert result.exit_code == 1
    assert "--uri with --sha256, or --file" in result.stderr


def test_rollout_create_sends_waves_selector_and_policy() -> None:
    recorder = Recorder(echo(201, rollout("draft")))
    policy = str(uuid.UUID(int=9))
    result = invoke(
        recorder,
        "--tenant",
        TENANT,
        "rollouts",
        "create",
        "--artifact",
        str(ARTIFACT["id"]),
        "--percentages",
        "10,30,60",
        "--selector",
        "region=eu,model=k1",
        "-l",
        "store=7",
        "--channel",
        "beta",
        "--policy",
        policy,
        "--name",
        "spring",
    )
    assert result.exit_code == 0, result.output
    assert list(recorder.bodies()) == [
        {
            "tenant": TENANT,
            "artifact_id": ARTIFACT["id"],
            "selector": {"region": "eu", "model": "k1", "store": "7"},
            "wave_percentages": [10, 30, 60],
            "channel": "beta",
            "policy_id": policy,
            "name": "spring",
        }
    ]


def test_policy_create_sends_only_the_given_fields() -> None:
    template = {
        "id": str(uuid.UUID(int=5)),
        "created_at": NOW,
        **dict.fromkeys(
            (
                "require_ok",
                "skip_offline",
                "grace_seconds",
                "min_success_ratio",
                "max_failures_per_wave",
                "abort_on_zero_eligible",
                "wave_deadline_seconds",
            )
        ),
    }
    recorder = Recorder(echo(201, template))
    result = invoke(
        recorder,
        "--tenant",
        TENANT,
        "policies",
        "create",
        "strict",
        "--no-skip-offline",
        "--min-success-ratio",
        "0.9",
        "--wave-deadline-seconds",
        "60",
    )
    assert result.exit_code == 0, result.output
    assert list(recorder.bodies()) == [
        {
            "tenant": TENANT,
            "name": "strict",
            "skip_offline": False,
            "min_success_ratio": 0.9,
            "wave_deadline_seconds": 60,
        }
    ]


def test_policy_create_sends_the_analysis_checks() -> None:
    template = {
        "id": str(uuid.UUID(int=6)),
        "created_at": NOW,
        **dict.fromkeys(
            (
                "require_ok",
                "skip_offline",
                "grace_seconds",
                "min_success_ratio",
                "max_failures_per_wave",
                "abort_on_zero_eligible",
                "wave_deadline_seconds",
            )
        ),
    }
    recorder = Recorder(echo(201, template))
    result = invoke(
        recorder,
        "--tenant",
        TENANT,
        "policies",
        "create",
        "no-worse",
        "--check",
        "error_rate: updated - baseline <= 0.02",
        "--check",
        "cpu: updated / baseline <= 1.3",
        "--min-devices",
        "5",
    )
    assert result.exit_code == 0, result.output
    assert list(recorder.bodies()) == [
        {
            "tenant": TENANT,
            "name": "no-worse",
            "analysis": {
                "checks": [
                    "error_rate: updated - baseline <= 0.02",
                    "cpu: updated / baseline <= 1.3",
                ],
                "min_devices": 5,
            },
        }
    ]
    alone = invoke(
        Recorder(echo(201, template)),
        "--tenant",
        TENANT,
        "policies",
        "create",
        "x",
        "--min-devices",
        "5",
    )
    assert alone.exit_code != 0
    assert "--min-devices needs at least one --check" in alone.output


def test_token_create_prints_the_secret_once() -> None:
    secret = "xdp47t_" + "z" * 49
    recorder = Recorder(echo(201, TOKEN_ROW | {"token": secret}))
    result = invoke(recorder, "tokens", "create", "ci", "-s", "rollouts:read")
    assert result.exit_code == 0, result.output
    assert result.stdout.count(secret) == 1
    assert "shown once" in result.stdout
    assert list(recorder.bodies()) == [{"name": "ci", "scopes": ["rollouts:read"]}]


def test_a_malformed_selector_is_refused_before_calling() -> None:
    """The CLI parses --selector with the API's own parser and says where."""
    recorder = Recorder(echo(201))
    result = invoke(
        recorder,
        "rollouts",
        "create",
        "--artifact",
        "00000000-0000-0000-0000-000000000001",
        "--tenant",
        "acme",
        "-l",
        "fleet=acc,idx 0",
    )
    assert result.exit_code == 1
    assert "--selector: selector 'idx 0' at column 15: expected =, !=" in (
        result.stderr
    )
    assert recorder.requests == []


def test_token_create_rejects_an_unknown_scope_before_calling() -> None:
    recorder = Recorder(echo(201))
    result = invoke(recorder, "tokens", "create", "ci", "-s", "root")
    assert result.exit_code == 1
    assert "unknown scope 'root'" in result.stderr
    assert recorder.requests == []


def test_token_revoke_posts_the_revoke_action() -> None:
    recorder = Recorder(lambda r: json_response(200, TOKEN_ROW))
    result = invoke(recorder, "tokens", "revoke", str(TOKEN_ROW["id"]))
    assert result.exit_code == 0
    assert recorder.requests[0].url.path == f"/api/tokens/{TOKEN_ROW['id']}:revoke"


def test_start_says_requested_and_json_is_the_rollout() -> None:
    body = rollout("draft")
    recorder = Recorder(lambda r: json_response(202, body))
    text = invoke(recorder, "rollouts", "start", body["id"])
    assert text.exit_code == 0
    assert text.stdout.startswith(f"start requested for rollout {body['id']}")
    raw = invoke(recorder, "rollouts", "abort", body["id"], "-o", "json")
    assert json.loads(raw.stdout) == body
    assert [r.url.path for r in recorder.requests] == [
        f"/api/rollouts/{body['id']}:start",
        f"/api/rollouts/{body['id']}:abort",
    ]


def test_plan_on_an_api_without_the_endpoint_is_explained() -> None:
    rid = rollout()["id"]
    for status, detail in ((404, "Not Found"), (405, "Method Not Allowed")):

        def handler(r: httpx.Request, s: int = status, d: str = detail) -> Any:
            return json_response(s, {"detail": d})

        result = invoke(handler, "rollouts", "plan", rid)
        assert result.exit_code == 1
        assert "this API has no plan endpoint" in result.stderr


def test_plan_of_a_missing_rollout_is_the_api_404() -> None:
    rid = rollout()["id"]
    detail = f"rollout '{rid}' not found"
    result = invoke(
        lambda r: json_response(404, {"detail": detail}), "rollouts", "plan", rid
    )
    assert result.stderr == f"error: 404 {detail}\n"


def test_plan_renders_waves_and_exclusions() -> None:
    rid = rollout()["id"]
    plan = {
        "rollout_id": rid,
        "status": "draft",
        "preview": True,
        "total": 3,
        "skip_offline": True,
        "waves": [
            {
                "wave": 1,
                "size": 1,
                "states": {"online": 1},
                "devices": [
                    {
                        "device_id": "d1",
                        "device_status": "online",
                        "window_open": False,
                        "window_opens_at": "2026-01-05T01:00:00+01:00",
                        "timezone": "Europe/Berlin",
                    }
                ],
                "truncated": False,
            },
            {
                "wave": 2,
                "size": 2,
                "states": {"online": 1, "offline": 1},
                "devices": [
                    {"device_id": "d2", "device_status": "online"},
                    {"device_id": "d3", "device_status": "offline", "would_skip": True},
                ],
                "truncated": False,
            },
        ],
        "excluded_counts": {},
        "excluded": [],
    }
    result = invoke(lambda r: json_response(200, plan), "rollouts", "plan", rid)
    assert result.exit_code == 0, result.output
    assert "3 devices in 2 waves" in result.stdout
    assert "d3 (would skip)" in result.stdout
    assert "d1 (window opens 2026-01-05 00:00 UTC)" in result.stdout
    as_json = invoke(
        lambda r: json_response(200, plan), "rollouts", "plan", rid, "-o", "json"
    )
    assert json.loads(as_json.stdout) == plan


def test_artifact_file_without_uri_is_streamed_to_the_upload_endpoint(
    tmp_path: Path,
) -> None:
    data = b"release bytes" * 100
    digest = hashlib.sha256(data).hexdigest()
    path = tmp_path / "app-2.bin"
    path.write_bytes(data)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return json_response(201, ARTIFACT | {"sha256": digest, "size": len(data)})

    result = invoke(
        handler,
        "--tenant",
        TENANT,
        "artifacts",
        "create",
        "-f",
        str(path),
        "--version",
        "2",
        "--meta",
        "k=v",
    )
    assert result.exit_code == 0, result.output
    (request,) = seen
    assert request.url.path == "/api/artifacts/upload"
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert request.content == data
    assert dict(request.url.params) == {
        "tenant": TENANT,
        "version": "2",
        "filename": "app-2.bin",
        "metadata": '{"k": "v"}',
    }


def test_an_upload_the_api_hashed_differently_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc")
    handler = lambda r: json_response(201, ARTIFACT)  # noqa: E731
    result = invoke(handler, "--tenant", TENANT, "artifacts", "create", "-f", str(path))
    assert result.exit_code == 1
    assert "the API computed sha256 " + "0" * 64 in result.stderr


def _deletion_server(status: int = 204, detail: str = ""):
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if request.method == "GET":
            return json_response(200, ARTIFACT)
        if status == 204:
            return httpx.Response(204)
        return json_response(status, {"detail": detail})

    return handler, calls


def test_artifact_delete_asks_and_stops_on_no() -> None:
    handler, calls = _deletion_server()
    result = invoke(handler, "artifacts", "delete", ARTIFACT["id"], input="n\n")
    assert result.exit_code == 1
    assert "Delete artifact 1.0.0" in result.output
    assert calls == ["GET"]  # nothing deleted


def test_artifact_delete_deletes_on_yes_or_with_the_flag() -> None:
    handler, calls = _deletion_server()
    result = invoke(handler, "artifacts", "delete", ARTIFACT["id"], input="y\n")
    assert result.exit_code == 0, result.output
    assert calls == ["GET", "DELETE"]
    assert f"deleted artifact {ARTIFACT['id']}" in result.stdout
    handler, calls = _deletion_server()
    result = invoke(handler, "artifacts", "delete", ARTIFACT["id"], "--yes")
    assert result.exit_code == 0, result.output
    assert calls == ["GET", "DELETE"]


def test_artifact_delete_refused_says_why() -> None:
    why = "artifact is still needed by 1 draft or running rollout(s)"
    handler, _ = _deletion_server(409, why)
    result = invoke(handler, "artifacts", "delete", ARTIFACT["id"], "-y")
    assert result.exit_code != 0
    assert why in result.stderr


@pytest.mark.parametrize("verb", ["pause", "resume", "approve", "promote"])
def test_steering_commands_post_their_action_and_say_the_hold(verb: str) -> None:
    body = rollout("running", hold="paused")
    recorder = Recorder(lambda r: json_response(202, body))
    result = invoke(recorder, "rollouts", verb, body["id"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(
        f"{verb} requested for rollout {body['id']} (status running (paused))"
    )
    assert [r.url.path for r in recorder.requests] == [
        f"/api/rollouts/{body['id']}:{verb}"
    ]


def test_a_refused_approve_prints_the_apis_reason() -> None:
    body = rollout("running", hold="awaiting_approval")
    detail = "four-eyes approval: this tenant requires another token"
    recorder = Recorder(lambda r: json_response(403, {"detail": detail}))
    result = invoke(recorder, "rollouts", "approve", body["id"])
    assert result.exit_code == 1
    assert "four-eyes approval" in result.stderr


def test_tenant_set_patches_the_four_eyes_setting() -> None:
    row = tenant("acme") | {"four_eyes_approval": True}
    recorder = Recorder(lambda r: json_response(200, row))
    result = invoke(recorder, "tenants", "set", "acme", "--four-eyes")
    assert result.exit_code == 0, result.stderr
    [request] = recorder.requests
    assert (request.method, request.url.path) == ("PATCH", "/api/tenants/acme")
    assert list(recorder.bodies()) == [{"four_eyes_approval": True}]
