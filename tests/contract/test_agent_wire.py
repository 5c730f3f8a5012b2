"""The agent's standard-library encoding of the device protocol matches the
published pydantic models of ``xdp47_common`` field for field, both ways; its
restated rules (labels, compatibility, enums, log redaction) match the shared
ones on the same cases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from xdp47_agent import labels as agent_labels
from xdp47_agent import logs as agent_logs
from xdp47_agent import wire
from xdp47_common.compat import is_compatible
from xdp47_common.messages import DesiredState, HeartbeatBody
from xdp47_common.models.device import ApplyResult, DeviceClaim, Health
from xdp47_common.models.reasons import FailureCode
from xdp47_common.redact import SENSITIVE_QUERY_PARAMETERS
from xdp47_common.redact import redact as common_redact
from xdp47_common.selectors import parse_labels

AID = uuid.uuid4()
RID = uuid.uuid4()
AT = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "body",
    [
        wire.HeartbeatBody(seq=1),
        wire.HeartbeatBody(
            seq=7,
            current_version="1.2.3",
            current_artifact_id=AID,
            last_apply=wire.LastApply(
                artifact_id=AID,
                result=wire.ApplyResult.FAILED,
                reason="sha256 mismatch: got 00",
                at=AT,
                code=wire.FailureCode.SHA256_MISMATCH.value,
                rollout_id=RID,
                attempt=2,
                device_attempt=1,
            ),
            health=wire.Health.DEGRADED,
            metrics={"cpu": 12.5, "mem": 100, "synthetic": True, "note": "x"},
        ),
    ],
)
def test_heartbeat_body_encodes_as_the_model_does(body: wire.HeartbeatBody):
    encoded = body.to_json()
    assert HeartbeatBody.model_validate(encoded).model_dump(mode="json") == encoded


@pytest.mark.parametrize(
    "answer",
    [
        {"action": "none"},
        {
            "action": "none",
            "heartbeat_interval": 5,
            "server_time": "2026-05-01T12:00:00Z",
        },
        {
            "action": "update",
            "artifact_id": str(AID),
            "version": "2.0.0",
            "uri": "http://control.test/a",
            "sha256": "ab" * 32,
            "size": 10,
            "signature": "c2ln",
            "compatible": {"arch": ["arm64"]},
            "rollout_id": str(RID),
            "attempt": 1,
            "rollback": True,
            "device_attempt": 2,
            "retry_after": "2026-05-01T12:00:05+00:00",
            "server_time": "2026-05-01T12:00:00Z",
            "device_id": "dev-1",
            "added_later": "ignored",
        },
        {
            "action": "none",
            "window_opens_at": "2026-05-01T13:00:00+00:00",
        },
    ],
)
def test_desired_state_decodes_as_the_model_does(answer):
    ours = wire.DesiredState.from_json(answer).to_json()
    theirs = DesiredState.model_validate(answer).model_dump(mode="json")
    assert ours == theirs


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"action": "reboot"},
        {"action": "update", "artifact_id": "not-a-uuid"},
        {"action": "update", "attempt": 0},
        {"action": "none", "server_time": "yesterday"},
    ],
)
def test_what_the_model_refuses_the_agent_refuses(answer):
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's is a ValueError
        DesiredState.model_validate(answer)
    with pytest.raises(wire.InvalidMessage):
        wire.DesiredState.from_json(answer)


@pytest.mark.parametrize(
    "text", ["site=berlin, model=k2,,", "a=b\nc=d", "", "site", "=x", "a=b c"]
)
def test_labels_parse_as_the_shared_rule_does(text):
    try:
        expected = parse_labels(text)
    except ValueError:
        with pytest.raises(ValueError):  # noqa: PT011
            agent_labels.parse_labels(text)
        return
    assert agent_labels.parse_labels(text) == expected


@pytest.mark.parametrize(
    ("compatible", "properties"),
    [
        (None, {}),
        ({}, {"arch": "arm64"}),
        ({"arch": ["arm64"]}, {"arch": "arm64"}),
        ({"arch": ["arm64"]}, {"arch": "amd64"}),
        ({"arch": ["arm64"]}, {}),
        ({"arch": ["arm64", "amd64"], "type": ["k2"]}, {"arch": "amd64", "type": "k2"}),
    ],
)
def test_compatibility_is_the_shared_rule(compatible, properties):
    assert agent_labels.is_compatible(compatible, properties) == is_compatible(
        compatible, properties
    )


@pytest.mark.parametrize(
    ("agent_enum", "model_enum"),
    [
        (wire.FailureCode, FailureCode),
        (wire.Health, Health),
        (wire.ApplyResult, ApplyResult),
    ],
)
def test_the_agents_enums_are_the_models(agent_enum: Any, model_enum: Any):
    """``wire`` restates the models' enums (the agent imports no pydantic)."""
    assert [m.value for m in agent_enum] == [m.value for m in model_enum]


def test_the_agent_masks_the_shared_credential_parameters():
    assert set(agent_logs._QUERY.split("|")) == SENSITIVE_QUERY_PARAMETERS


@pytest.mark.parametrize(
    "line",
    [
        "claim with xdp47t_abcdefgh1234 refused",
        "heartbeat as xdp47d_Zx9Yw8Vu7 failed",
        "GET https://user:hunter2@host/a failed",
        "download https://bucket/a?X-Amz-Signature=deadbeef&x=1 stalled",
        "GET https://cdn/a?token=s3cr3t#frag: HTTP 403",
        "sent Bearer abc.def-ghi rejected",
        "sent Basic dXNlcjpwYXNz",
    ],
)
def test_agent_log_lines_are_masked_as_the_shared_rule_masks(line: str):
    """``xdp47_agent.logs`` keeps the part of ``xdp47_common.redact`` the
    agent's own lines can hold: on such lines both give the same text."""
    assert agent_logs.redact(line) == common_redact(line)
    assert agent_logs.redact(line) != line


@pytest.mark.parametrize("timezone", [None, "Pacific/Kiritimati"])
def test_claim_body_is_what_the_model_reads(timezone: str | None):
    body = wire.claim_body(
        tenant="acme",
        labels={"site": "berlin"},
        properties={"arch": "arm64"},
        device_id="kiosk-1",
        channel="stable",
        timezone=timezone,
    )
    assert DeviceClaim.model_validate(body).model_dump(mode="json") == body
