"""What this device is, as the agent declares it: the fingerprint of what it
claimed with (labels, properties, channel), and the compatibility check of an
artifact against its properties (``labels.is_compatible``)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from typing import Any

from xdp47_agent.config import AgentConfig
from xdp47_agent.labels import is_compatible

__all__ = ["claim_fingerprint", "compact", "is_compatible"]


def claim_fingerprint(config: AgentConfig) -> str:
    """A digest of what a claim declares; another one means: claim again."""
    declared = {
        "labels": dict(config.device_labels),
        "properties": dict(config.device_properties),
        "channel": config.channel,
        "tenant": config.tenant,
    }
    if config.device_timezone:  # absent: the digest of an agent before the field
        declared["timezone"] = config.device_timezone
    raw = json.dumps(declared, sort_keys=True).encode()
    return _sha256_hex(raw)[:32]


def _sha256_hex(data: bytes) -> str:
    """SHA-256 by CPython's own implementation (``_sha256``, ``_sha2`` from 3.12),
    which every CPython builds; ``hashlib`` would map OpenSSL's libcrypto
    (~3.7 MB resident) into the idle agent for this one small digest."""
    for name in ("_sha2", "_sha256"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return str(module.sha256(data).hexdigest())
    import hashlib

    return hashlib.sha256(data).hexdigest()


def compact(value: Mapping[str, Any] | None, limit: int = 200) -> str:
    """A bounded one-line rendering for the refusal's reason text."""
    text = json.dumps(dict(value or {}), sort_keys=True, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."
