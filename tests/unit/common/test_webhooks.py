"""Webhook signatures and the address guard, without I/O."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from xdp47_common.webhooks import (
    DestinationRefused,
    check_url,
    refused_address,
    sign,
    signature_headers,
    verify,
)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"event":"completed"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1700000000, body) == f"v1={expected}"


def test_a_receiver_verifies_and_rejects_tampering_and_replays() -> None:
    body = b'{"event":"completed"}'
    headers = signature_headers("s3cret", 1000, body, "evt-1", "completed", "d-1")
    assert headers["X-XDP47-Event-Id"] == "evt-1"
    assert verify("s3cret", headers, body, now=1010)
    assert not verify("other", headers, body, now=1010)
    assert not verify("s3cret", headers, body + b" ", now=1010)
    assert not verify("s3cret", headers, body, now=1000 + 301)  # a replay
    assert not verify("s3cret", {}, body, now=1000)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert verify("s3cret", lowered, body, now=1000)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
    ],
)
def test_addresses_refused_by_kind(address: str, kind: str | None) -> None:
    assert refused_address(address) == kind


@pytest.mark.parametrize(
    "url",
    ["ftp://x/", "http://", "http://u:p@x/", "javascript:alert(1)", "http://x:99999/"],
)
def test_only_plain_http_urls(url: str) -> None:
    with pytest.raises(DestinationRefused):
        check_url(url)


def test_default_ports() -> None:
    assert check_url("https://hooks.example.com/x") == ("hooks.example.com", 443)
    assert check_url("http://hooks.example.com:8080/x") == ("hooks.example.com", 8080)
