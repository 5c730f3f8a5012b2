"""The agent's configuration: one frozen ``AgentConfig`` per device.

``AgentConfig`` is a plain value (a ``NamedTuple`` whose constructor checks and
converts: ``dataclasses`` would import ``inspect``, ~1 MB, into the idle agent),
so a process can run many agents, each with
its own config, without touching the environment; ``load_config()`` builds one
from the ``XDP47_*`` variables for the ``xdp47-agent`` command. Every field is
read from the variable of its upper-cased name (``heartbeat_interval``:
``XDP47_HEARTBEAT_INTERVAL``); a new setting is one field with a default and,
when it needs one, a check in ``_checked``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from xdp47_agent.labels import (
    DEVICE_ID_PATTERN,
    TENANT_ID_PATTERN,
    parse_labels,
)

__all__ = [
    "DEVICE_ID_PATTERN",
    "AgentConfig",
    "ConfigError",
    "Secret",
    "check_http_url",
    "load_config",
]

_CHANNEL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
# The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 raw
# key bytes follow it.
_ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")


class ConfigError(ValueError):
    """A setting that cannot be used; the message names its variable."""


class Secret:
    """A string that does not show in reprs or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


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
        body = text.split("-----BEGIN PUBLIC KEY-----", 1)[1]
        body = body.split("-----END PUBLIC KEY-----", 1)[0]
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{path} holds a malformed PEM public key") from exc
        if len(der) != 44 or not der.startswith(_ED25519_SPKI):
            raise ValueError(f"{path} holds a public key that is not Ed25519")
        return [der[len(_ED25519_SPKI) :]]
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
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise ConfigError(
            f"{name} must be an http(s) URL with a host, got {value!r}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL with a host, got {value!r}")
    return value.rstrip("/")


def _text(value: Any, name: str) -> str:
    if isinstance(value, Secret):
        return value.get_secret_value()
    if not isinstance(value, str):
        raise ConfigError(f"{_var(name)} must be text, got {type(value).__name__}")
    return value


def _var(name: str) -> str:
    return f"XDP47_{name.upper()}"


def _optional_url(value: Any, name: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return check_http_url(_text(value, name), _var(name))


def _labels(value: Any, name: str) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = parse_labels(value)
        except ValueError as exc:
            raise ConfigError(f"{_var(name)}: {exc}") from None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{_var(name)} must be key=value items")
    text = ",".join(f"{k}={v}" for k, v in value.items())
    try:
        return parse_labels(text) if value else {}
    except ValueError as exc:
        raise ConfigError(f"{_var(name)}: {exc}") from None


def _zone(value: Any, name: str) -> str | None:
    """An IANA zone name ``zoneinfo`` knows, or None when unset. ``zoneinfo`` is
    imported only when a zone is given: the idle agent without one never pays
    for it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = _text(value, name).strip()
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{_var(name)}: {text!r} is not an IANA time zone (e.g. Europe/Berlin)"
        ) from None
    return text


def _number(value: Any, name: str, *, integer: bool = False) -> Any:
    kind = int if integer else float
    try:
        if isinstance(value, bool):
            raise ValueError
        number = kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        what = "an integer" if integer else "a number"
        raise ConfigError(f"{_var(name)} must be {what}, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{_var(name)} must be greater than 0, got {value!r}")
    return number


_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f"})


def _flag(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == "":
        return None
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ConfigError(f"{_var(name)} must be true or false, got {value!r}")


def _pattern(value: Any, name: str, pattern: str) -> str:
    text = _text(value, name)
    if not re.fullmatch(pattern, text):
        raise ConfigError(f"{_var(name)} {text[:80]!r} does not match {pattern}")
    return text


class _Settings(NamedTuple):
    """The fields of ``AgentConfig`` as given (text or their types)."""

    # Base URL of the control plane (api).
    control_url: str
    # Token with devices:claim.
    agent_token: Secret
    # Base URL for heartbeats; when unset, the one the claim answer names, else
    # control_url.
    ingest_url: str | None = None
    tenant: str = "default"
    # Labels sent with the claim.
    device_labels: dict[str, str] | str = ""
    # What this device is (device_type=kiosk-k2,arch=arm64): sent with the
    # claim, and checked against an artifact's declared compatibility before it
    # is downloaded.
    device_properties: dict[str, str] | str = ""
    # This device's IANA time zone (Europe/Berlin), sent with the claim: a
    # rollout's maintenance windows are read in it. Unset: its timezone label,
    # else the tenant's default_timezone, else UTC.
    device_timezone: str | None = None
    # The demo app's /metrics; synthetic when unset.
    metrics_url: str | None = None
    state_dir: Path = Path("/var/lib/xdp47")
    # Claim this id instead of the stored or a new one.
    device_id: str | None = None
    channel: str = "stable"
    heartbeat_interval: float = 10.0
    verify_keys: list[bytes] | str = ""
    # Refuse unsigned artifacts. Unset means: yes when verify keys are
    # configured (once keys exist, an unsigned artifact would bypass them).
    require_signatures: bool | None = None
    max_artifact_bytes: int = 1 << 30
    # Overall deadline of one download, seconds.
    download_timeout: float = 600.0
    # Give up when no byte arrives for this long.
    download_stall_timeout: float = 30.0
    request_timeout: float = 10.0
    # First wait before retrying an artifact that failed, when the answer names
    # no try (device_attempt); otherwise the server's retry_after governs.
    apply_backoff: float = 5.0
    # Cap of the per-artifact retry wait.
    apply_backoff_max: float = 600.0
    max_retry_after: float = 300.0


class AgentConfig(_Settings):
    """Everything one agent needs; see docs/agent.md for each field.

    Values may be given as the environment would (text) or as their type;
    the constructor checks and converts them (``_checked``).

    Raises:
        ConfigError: a value that cannot be used, naming its variable.
    """

    __slots__ = ()
    device_labels: dict[str, str]
    device_properties: dict[str, str]
    verify_keys: list[bytes]

    def __new__(cls, *args: Any, **values: Any) -> AgentConfig:
        given = _Settings(*args, **values)
        return super().__new__(cls, **{**given._asdict(), **_checked(given)})

    @classmethod
    def of(cls, **values: Any) -> AgentConfig:
        """A config from values given as text (as in the environment) or as
        their types, checked like the environment's."""
        return cls(**values)

    @property
    def signatures_required(self) -> bool:
        if self.require_signatures is None:
            return bool(self.verify_keys)
        return self.require_signatures


def _checked(c: _Settings) -> dict[str, Any]:
    """Every field of ``c`` in its type, checked."""
    out: dict[str, Any] = {
        "control_url": check_http_url(
            _text(c.control_url, "control_url"), "XDP47_CONTROL_URL"
        ),
        "agent_token": Secret(_text(c.agent_token, "agent_token")),
        "ingest_url": _optional_url(c.ingest_url, "ingest_url"),
        "metrics_url": _optional_url(c.metrics_url, "metrics_url"),
        "tenant": _pattern(c.tenant, "tenant", TENANT_ID_PATTERN),
        "device_labels": _labels(c.device_labels, "device_labels"),
        "device_properties": _labels(c.device_properties, "device_properties"),
        "device_timezone": _zone(c.device_timezone, "device_timezone"),
        "state_dir": Path(c.state_dir),
        "channel": _pattern(c.channel, "channel", _CHANNEL.pattern),
        "require_signatures": _flag(c.require_signatures, "require_signatures"),
        "max_artifact_bytes": _number(
            c.max_artifact_bytes, "max_artifact_bytes", integer=True
        ),
    }
    device_id = c.device_id
    if isinstance(device_id, str) and not device_id.strip():
        device_id = None
    out["device_id"] = (
        None
        if device_id is None
        else _pattern(device_id, "device_id", DEVICE_ID_PATTERN)
    )
    for name in (
        "heartbeat_interval",
        "download_timeout",
        "download_stall_timeout",
        "request_timeout",
        "apply_backoff",
        "apply_backoff_max",
        "max_retry_after",
    ):
        out[name] = _number(getattr(c, name), name)
    if out["heartbeat_interval"] > 86_400:
        raise ConfigError("XDP47_HEARTBEAT_INTERVAL must be at most 86400")
    keys = c.verify_keys
    try:
        if isinstance(keys, str):
            keys = parse_verify_keys(keys)
        out["verify_keys"] = [
            _decode_key(k) if isinstance(k, str) else bytes(k) for k in keys
        ]
    except (ValueError, OSError) as exc:
        message = str(exc)
        if not message.startswith("XDP47_VERIFY_KEYS"):
            message = f"XDP47_VERIFY_KEYS: {message}"
        raise ConfigError(message) from None
    return out


def load_config(environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Build the config from ``XDP47_*`` variables (the process environment
    when ``environ`` is None).

    Raises:
        ConfigError: naming the missing or bad variable.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name in _Settings._fields:
        raw = env.get(_var(name))
        if raw is not None:
            values[name] = raw
    missing = [
        _var(name) for name in ("control_url", "agent_token") if name not in values
    ]
    if missing:
        raise ConfigError("; ".join(f"{name} is required" for name in missing))
    return AgentConfig(**values)
