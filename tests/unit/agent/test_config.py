"""Agent configuration: labels, verify keys and URLs fail with a clear message."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xdp47_agent.config import AgentConfig, load_config


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def _labels(raw: str) -> dict[str, str]:
    config = AgentConfig.of(control_url="http://c", agent_token="t", device_labels=raw)
    return dict(config.device_labels)


def test_labels_parse():
    assert _labels("site=berlin, model=k2,,") == {"site": "berlin", "model": "k2"}
    assert _labels("site=berlin\nmodel=k2") == {"site": "berlin", "model": "k2"}
    assert _labels("") == {}


@pytest.mark.parametrize(
    ("raw", "entry"), [("site", "'site'"), ("=x", "'=x'"), ("a=b,broken", "'broken'")]
)
def test_bad_labels_name_the_variable_and_entry(raw, entry):
    with pytest.raises(ValueError, match=f"XDP47_DEVICE_LABELS: label {entry}"):
        _labels(raw)


def test_env_config(monkeypatch, tmp_path: Path):
    key = Ed25519PrivateKey.generate()
    monkeypatch.setenv("XDP47_CONTROL_URL", "https://ota.example.com/")
    monkeypatch.setenv("XDP47_TENANT", "acme")
    monkeypatch.setenv("XDP47_DEVICE_LABELS", "site=berlin,model=k2")
    monkeypatch.setenv("XDP47_AGENT_TOKEN", "xdp47t_secret")
    monkeypatch.setenv("XDP47_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("XDP47_DEVICE_ID", "")
    monkeypatch.setenv("XDP47_METRICS_URL", "")
    monkeypatch.setenv("XDP47_VERIFY_KEYS", base64.b64encode(_raw(key)).decode())
    monkeypatch.setenv("XDP47_HEARTBEAT_INTERVAL", "2.5")
    config = load_config()
    assert config.control_url == "https://ota.example.com"
    assert config.ingest_url is None
    assert config.device_labels == {"site": "berlin", "model": "k2"}
    assert config.device_id is None
    assert config.metrics_url is None
    assert config.verify_keys == [_raw(key)]
    assert config.signatures_required  # implied by the configured key
    assert config.heartbeat_interval == 2.5
    assert config.state_dir == tmp_path


def test_bad_labels_in_env_fail_validation(monkeypatch):
    monkeypatch.setenv("XDP47_CONTROL_URL", "http://x")
    monkeypatch.setenv("XDP47_AGENT_TOKEN", "t")
    monkeypatch.setenv("XDP47_DEVICE_LABELS", "oops")
    with pytest.raises(ValueError, match="XDP47_DEVICE_LABELS: label 'oops'"):
        load_config()


def test_verify_keys_from_file(tmp_path: Path):
    a, b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    lines = tmp_path / "keys"
    lines.write_text(
        "\n".join(base64.b64encode(_raw(k)).decode() for k in (a, b)) + "\n"
    )
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        a.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    base = {"control_url": "http://x", "agent_token": "t"}
    assert AgentConfig.of(**base, verify_keys=str(lines)).verify_keys == [
        _raw(a),
        _raw(b),
    ]
    assert AgentConfig.of(**base, verify_keys=str(pem)).verify_keys == [_raw(a)]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("verify_keys", "AAAA", "decodes to 3 bytes"),
        ("verify_keys", "not base64!", "is not base64"),
        ("verify_keys", "/nonexistent/keys", "no key file"),
        ("control_url", "ftp://x", "XDP47_CONTROL_URL must be an http"),
        ("ingest_url", "nohost", "XDP47_INGEST_URL must be an http"),
        ("device_id", "../x", "XDP47_DEVICE_ID"),
        ("device_timezone", "Mars/Olympus", "XDP47_DEVICE_TIMEZONE: 'Mars/Olympus'"),
        ("device_timezone", "../../etc/passwd", "is not an IANA time zone"),
    ],
)
def test_bad_values_are_named(field, value, message):
    base = {"control_url": "http://x", "agent_token": "t"}
    with pytest.raises(ValueError, match=message):
        AgentConfig.of(**{**base, field: value})


def test_require_signatures_can_be_turned_off_with_keys():
    key = base64.b64encode(_raw(Ed25519PrivateKey.generate())).decode()
    config = AgentConfig.of(
        control_url="http://x",
        agent_token="t",
        verify_keys=key,
        require_signatures=False,
    )
    assert not config.signatures_required


def test_device_timezone_is_trimmed_and_optional():
    base = {"control_url": "http://x", "agent_token": "t"}
    assert AgentConfig.of(**base).device_timezone is None
    assert AgentConfig.of(**base, device_timezone="  ").device_timezone is None
    zoned = AgentConfig.of(**base, device_timezone=" Pacific/Kiritimati ")
    assert zoned.device_timezone == "Pacific/Kiritimati"
