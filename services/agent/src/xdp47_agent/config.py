"""The agent's configuration: one frozen ``AgentConfig`` per device.

``AgentConfig`` is a plain model so a process can run many agents, each with its
own config, without touching the environment; ``load_config()`` builds one from the
``XDP47_*`` variables for the ``xdp47-agent`` command.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from xdp47_common.models.base import (
    DeviceId,
    LabelKey,
    LabelValue,
    TenantId,
)
from xdp47_common.rollout.windows import known_zone
from xdp47_common.selectors import parse_labels

__all__ = ["AgentConfig", "AgentSettings", "check_http_url", "load_config"]

ChannelName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$")]


def _decode_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"verify key {text[:12]!r}… is not base64") from exc
    if len(raw) != 32:
        raise ValueError(
            f"verify key {text[:12]!r}… decodes to {len(raw)} bytes; "
            "a raw Ed25519 public key is 32"
        )
    return raw


def _keys_from_file(path: Path) -> list[bytes]:
    text = path.read_text()
    if "-----BEGIN PUBLIC KEY-----" in text:
        key = load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{path} holds a public key that is not Ed25519")
        return [key.public_bytes_raw()]
    return [_decode_key(line.strip()) for line in text.splitlines() if line.strip()]


def parse_verify_keys(raw: str) -> list[bytes]:
    """Comma-separated base64 raw Ed25519 keys, or the path of a file holding one
    per line (or a PEM public key)."""
    raw = raw.strip()
    if not raw:
        return []
    # Base64 may start with "/", so an existing file decides, not the spelling.
    path = Path(raw).expanduser()
    if "," not in raw and path.is_file():
        return _keys_from_file(path)
    try:
        return [_decode_key(part.strip()) for part in raw.split(",") if part.strip()]
    except ValueError as exc:
        if "/" in raw and "," not in raw:
            raise ValueError(f"XDP47_VERIFY_KEYS: no key file at {raw}") from exc
        raise


def check_http_url(value: str, name: str) -> str:
    """``value`` without a trailing slash.

    Raises:
        ValueError: not an http(s) URL with a host, naming ``name``.
    """
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http(s) URL with a host, got {value!r}")
    return value.rstrip("/")


class AgentConfig(BaseModel):
    """Everything one agent needs; see docs/agent.md for each field."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    control_url: str = Field(description="Base URL of the control plane (api).")
    ingest_url: str | None = Field(
        default=None,
        description="Base URL for heartbeats; when unset, the one the claim answer "
        "names, else control_url.",
    )
    tenant: TenantId = "default"
    device_labels: Annotated[dict[LabelKey, LabelValue], NoDecode] = Field(
        default_factory=dict, description="Labels sent with the claim."
    )
    device_properties: Annotated[dict[LabelKey, LabelValue], NoDecode] = Field(
        default_factory=dict,
        description="What this device is (device_type=kiosk-k2,arch=arm64): sent "
        "with the claim, and checked against an artifact's declared compatibility "
        "before it is downloaded.",
    )
    device_timezone: str | None = Field(
        default=None,
        description="This device's IANA time zone (Europe/Berlin), sent with the "
        "claim: a rollout's maintenance windows are read in it. Unset: its "
        "timezone label, else the tenant's default_timezone, else UTC.",
    )
    agent_token: SecretStr = Field(description="Token with devices:claim.")
    metrics_url: str | None = Field(
        default=None, description="The demo app's /metrics; synthetic when unset."
    )
    state_dir: Path = Path("/var/lib/xdp47")
    device_id: DeviceId | None = Field(
        default=None, description="Claim this id instead of the stored or a new one."
    )
    channel: ChannelName = "stable"
    heartbeat_interval: Annotated[float, Field(gt=0, le=86_400)] = 10.0
    verify_keys: Annotated[list[bytes], NoDecode] = Field(default_factory=list)
    require_signatures: bool | None = Field(
        default=None,
        description="Refuse unsigned artifacts. Unset means: yes when verify keys "
        "are configured (once keys exist, an unsigned artifact would bypass them).",
    )
    max_artifact_bytes: Annotated[int, Field(ge=1)] = 1 << 30
    download_timeout: Annotated[float, Field(gt=0)] = Field(
        default=600.0, description="Overall deadline of one download, seconds."
    )
    download_stall_timeout: Annotated[float, Field(gt=0)] = Field(
        default=30.0, description="Give up when no byte arrives for this long."
    )
    request_timeout: Annotated[float, Field(gt=0)] = 10.0
    apply_backoff: Annotated[float, Field(gt=0)] = Field(
        default=5.0,
        description="First wait before retrying an artifact that failed, when the "
        "answer names no try (device_attempt); otherwise the server's retry_after "
        "governs.",
    )
    apply_backoff_max: Annotated[float, Field(gt=0)] = Field(
        default=600.0, description="Cap of the per-artifact retry wait."
    )
    max_retry_after: Annotated[float, Field(gt=0)] = 300.0

    @field_validator("control_url")
    @classmethod
    def _control(cls, v: str) -> str:
        return check_http_url(v, "XDP47_CONTROL_URL")

    @field_validator("ingest_url", "metrics_url", mode="before")
    @classmethod
    def _optional_url(cls, v: Any, info: Any) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        return check_http_url(str(v), f"XDP47_{info.field_name.upper()}")

    @field_validator("device_id", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("device_labels", "device_properties", mode="before")
    @classmethod
    def _labels(cls, v: Any, info: Any) -> Any:
        # The shared parser: a typo in a unit file fails loudly, naming the entry.
        if not isinstance(v, str):
            return v
        try:
            return parse_labels(v)
        except ValueError as exc:
            raise ValueError(f"XDP47_{info.field_name.upper()}: {exc}") from None

    @field_validator("device_timezone", mode="before")
    @classmethod
    def _zone(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            return None
        if isinstance(v, str) and not known_zone(v.strip()):
            raise ValueError(
                f"XDP47_DEVICE_TIMEZONE: {v!r} is not an IANA time zone "
                "(e.g. Europe/Berlin)"
            )
        return v.strip() if isinstance(v, str) else v

    @field_validator("verify_keys", mode="before")
    @classmethod
    def _keys(cls, v: Any) -> Any:
        if isinstance(v, str):
            return parse_verify_keys(v)
        if isinstance(v, list):
            return [_decode_key(k) if isinstance(k, str) else k for k in v]
        return v

    @property
    def signatures_required(self) -> bool:
        if self.require_signatures is None:
            return bool(self.verify_keys)
        return self.require_signatures


class AgentSettings(BaseSettings, AgentConfig):
    """``AgentConfig`` read from ``XDP47_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="XDP47_", extra="ignore", frozen=True)


def load_config() -> AgentConfig:
    """Build the config from the environment; raises ``pydantic.ValidationError``
    naming the bad variable."""
    settings = AgentSettings()
    return AgentConfig.model_validate(dict(settings))
