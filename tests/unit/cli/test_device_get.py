"""``xdp47 devices get`` shows the device, its failure reasons in words, its
rollout history and latest heartbeats; ``-o json`` is the API's answer."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.unit.cli.fakes import NOW, TENANT, invoke, json_response

ROLLOUT = str(uuid.UUID(int=7))
DEVICE: dict[str, Any] = {
    "id": "kiosk-1",
    "tenant": TENANT,
    "labels": {"site": "berlin"},
    "channel": "stable",
    "status": "online",
    "health": "ok",
    "current_version": "1.0.0",
    "current_artifact_id": None,
    "desired_artifact_id": None,
    "desired_version": "2.0.0",
    "desired_rollout_id": ROLLOUT,
    "last_apply": {
        "artifact_id": str(uuid.UUID(int=9)),
        "result": "failed",
        "code": "sha256_mismatch",
        "reason": "sha256 mismatch: got 00ff",
        "at": NOW,
    },
    "last_seq": 42,
    "last_seen": NOW,
    "last_metrics": {"cpu": 3},
    "claimed_at": NOW,
    "recent_heartbeats": [
        {"seq": 42, "at": NOW, "health": "ok", "metrics": {"cpu": 3}},
        {"seq": 41, "at": NOW, "health": "ok", "metrics": {"cpu": 4}},
    ],
    "rollout_history": [
        {
            "rollout_id": ROLLOUT,
            "rollout_name": "spring",
            "version": "2.0.0",
            "attempt": 1,
            "wave": 2,
            "state": "failed",
            "reason": "sha256_mismatch",
            "reason_detail": "sha256 mismatch: got 00ff",
            "assigned_at": NOW,
            "finished_at": NOW,
        }
    ],
}


def handler(request: httpx.Request) -> httpx.Response:
    assert request.url.path == "/api/devices/kiosk-1"
    return json_response(200, DEVICE)


def test_table_names_every_section_and_explains_the_code() -> None:
    result = invoke(handler, "--tenant", TENANT, "devices", "get", "kiosk-1")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "ROLLOUT HISTORY" in out
    assert "LATEST HEARTBEATS" in out
    assert "spring" in out
    # No reason_text in the answer: the CLI's own sentence for the code.
    assert "sha256_mismatch: The downloaded bytes do not match" in out
    assert "(sha256 mismatch: got 00ff)" in out
    assert "cpu=4" in out


def test_json_is_the_api_answer() -> None:
    result = invoke(
        handler, "--tenant", TENANT, "devices", "get", "kiosk-1", "-o", "json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == DEVICE


def test_the_history_lists_the_failed_tries_of_per_device_retries() -> None:
    """A target that succeeded on its third try shows its two failed tries."""
    retried = {
        **DEVICE["rollout_history"][0],
        "state": "applied",
        "reason": None,
        "reason_detail": None,
        "device_attempt": 3,
        "attempts": [
            {"attempt": 1, "code": "download_failed", "reason": "HTTP 503", "at": NOW},
            {"attempt": 2, "code": "download_failed", "reason": "HTTP 503", "at": NOW},
        ],
    }
    device = {**DEVICE, "rollout_history": [retried]}

    def answer(request: httpx.Request) -> httpx.Response:
        return json_response(200, device)

    result = invoke(
        answer, "--tenant", TENANT, "devices", "get", "kiosk-1", "-o", "wide"
    )
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "1 download_failed; 2 download_failed" in flat.replace("│ ", "")
