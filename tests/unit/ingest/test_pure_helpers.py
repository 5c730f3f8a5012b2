"""Pure helpers of the heartbeat path: credentials, ETags, decode errors, dedupe."""

from __future__ import annotations

import pytest
from fastapi import HTTPException
from pydantic import ValidationError
from starlette.requests import Request

from xdp47_common.bus import PoisonMessage, classify_decode_error
from xdp47_common.clock import utcnow
from xdp47_common.messages import (
    COMMAND_ADAPTER,
    HEARTBEAT_ADAPTER,
    Heartbeat,
    HeartbeatBatch,
    HeartbeatReceived,
)
from xdp47_common.tokens import SecretKind, new_secret
from xdp47_common.web.device_auth import bearer_credential
from xdp47_ingest.desired import etag_matches, etag_of
from xdp47_scheduler.heartbeats import dedupe_heartbeats


def _request(authorization: str | None) -> Request:
    headers = (
        [] if authorization is None else [(b"authorization", authorization.encode())]
    )
    return Request({"type": "http", "headers": headers})


def test_bearer_credential_accepts_a_well_formed_device_credential() -> None:
    credential = new_secret(SecretKind.DEVICE_CREDENTIAL)
    assert bearer_credential(_request(f"Bearer {credential}")) == credential
    assert bearer_credential(_request(f"bearer  {credential} ")) == credential


def _broken_checksum(secret: str) -> str:
    """The secret with its last (checksum) character changed."""
    return secret[:-1] + ("1" if secret.endswith("0") else "0")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Token abc",
        "Bearer " + new_secret(SecretKind.API_TOKEN),
        "Bearer " + _broken_checksum(new_secret(SecretKind.DEVICE_CREDENTIAL)),
        "Bearer xdp47d_" + "é" * 49,
    ],
)
def test_bearer_credential_rejects_malformed(header: str | None) -> None:
    with pytest.raises(HTTPException) as info:
        bearer_credential(_request(header))
    assert info.value.status_code == 401


def test_etag_is_strong_stable_and_content_sensitive() -> None:
    tag = etag_of(b'{"action":"none"}')
    assert tag == etag_of(b'{"action":"none"}')
    assert tag != etag_of(b'{"action":"update"}')
    assert tag.startswith('"')
    assert tag.endswith('"')


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        ("*", True),
        ('"other"', False),
        ('"other", TAG', True),
        ("W/TAG", True),
    ],
)
def test_if_none_match(header: str | None, matches: bool) -> None:
    tag = etag_of(b"x")
    assert (
        etag_matches(header.replace("TAG", tag) if header else header, tag) is matches
    )


def _hb(device: str, seq: int, tenant: str = "acme") -> HeartbeatReceived:
    return HeartbeatReceived(
        tenant=tenant,
        heartbeat=Heartbeat(seq=seq, device_id=device, received_at=utcnow()),
    )


def _beat(device: str, seq: int) -> Heartbeat:
    return Heartbeat(seq=seq, device_id=device, received_at=utcnow())


def test_dedupe_keeps_highest_seq_per_tenant_and_device() -> None:
    first = _beat("a", 2)
    batch = [
        HeartbeatBatch(tenant="acme", heartbeats=[_beat("a", 1), first]),
        HeartbeatBatch(tenant="acme", heartbeats=[_beat("a", 2), _beat("b", 9)]),
        HeartbeatBatch(tenant="other", heartbeats=[_beat("a", 1)]),
    ]
    kept = dedupe_heartbeats(batch)
    assert kept[("acme", "a")] is first
    assert kept[("acme", "b")].seq == 9
    assert kept[("other", "a")].seq == 1
    assert len(kept) == 3


def _reason(adapter, body: bytes) -> str:
    with pytest.raises(ValidationError) as info:
        adapter.validate_json(body)
    return classify_decode_error(info.value)


def test_decode_errors_are_classified() -> None:
    good = _hb("a", 1).model_dump_json()
    assert _reason(HEARTBEAT_ADAPTER, b"{nope") == "bad_json"
    assert _reason(
        HEARTBEAT_ADAPTER, good.replace("heartbeat.received", "x").encode()
    ) == ("unknown_type")
    assert _reason(COMMAND_ADAPTER, b'{"type": "rollout.explode"}') == "unknown_type"
    assert _reason(HEARTBEAT_ADAPTER, b'{"type": "heartbeat.received"}') == "invalid"
    assert classify_decode_error(PoisonMessage("too_old")) == "too_old"
    assert (
        classify_decode_error(UnicodeDecodeError("utf-8", b"", 0, 1, "x")) == "bad_json"
    )
