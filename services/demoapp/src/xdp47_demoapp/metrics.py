"""What the demo app reports for a version: a pure, deterministic function.

A release is *bad* when its version contains ``bad`` (any case) or is listed in
``XDP47_DEMO_BAD_VERSIONS``; a bad release shows high error rate and CPU and
``status: failing``, so a ``require_ok`` gate stops its rollout. A release is
*subtly bad* when its version contains ``subtle`` (any case) or is listed in
``XDP47_DEMO_SUBTLE_VERSIONS``: ``status: ok`` and the CPU and memory of a good
release, but an error rate ten points (0.10) higher, which only a telemetry
analysis (``error_rate: updated - baseline <= 0.02``) catches. Good releases
differ slightly from each other (seeded by the version) but are always ``ok``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "SUBTLE_ERROR_RATE",
    "is_bad",
    "is_subtly_bad",
    "metrics_for",
    "parse_bad_versions",
    "read_applied_version",
    "read_metrics",
]


def parse_bad_versions(raw: str | None) -> frozenset[str]:
    """The comma list of ``XDP47_DEMO_BAD_VERSIONS``."""
    return frozenset(v.strip() for v in (raw or "").split(",") if v.strip())


def is_bad(version: str | None, bad_versions: Iterable[str] = ()) -> bool:
    if version is None:
        return False
    return "bad" in version.lower() or version in set(bad_versions)


# What a subtly bad release adds to a good release's error rate (0 to 0.01).
SUBTLE_ERROR_RATE = 0.10


def is_subtly_bad(version: str | None, subtle_versions: Iterable[str] = ()) -> bool:
    if version is None:
        return False
    return "subtle" in version.lower() or version in set(subtle_versions)


def _unit(version: str, salt: str) -> float:
    """A number in [0, 1) fixed by (version, salt)."""
    digest = hashlib.sha256(f"{salt}:{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def metrics_for(
    version: str | None,
    bad_versions: Iterable[str] = (),
    subtle_versions: Iterable[str] = (),
) -> dict[str, Any]:
    """The ``/metrics`` document for ``version`` (None: nothing applied yet)."""
    key = version or ""
    if is_bad(version, bad_versions):
        return {
            "version": version,
            "cpu": round(85 + 14 * _unit(key, "cpu"), 2),
            "mem": round(400 + 200 * _unit(key, "mem"), 1),
            "error_rate": round(0.25 + 0.25 * _unit(key, "err"), 4),
            "status": "failing",
        }
    extra = SUBTLE_ERROR_RATE if is_subtly_bad(version, subtle_versions) else 0.0
    return {
        "version": version,
        "cpu": round(5 + 25 * _unit(key, "cpu"), 2),
        "mem": round(100 + 150 * _unit(key, "mem"), 1),
        "error_rate": round(extra + 0.01 * _unit(key, "err"), 4),
        "status": "ok",
    }


def read_applied_version(state_dir: Path) -> str | None:
    """The agent's ``applied_version`` file, or None before the first apply."""
    try:
        text = (state_dir / "applied_version").read_text(errors="replace").strip()
    except FileNotFoundError:
        return None
    return text or None


def read_metrics(
    state_dir: Path,
    bad_versions: Iterable[str] = (),
    subtle_versions: Iterable[str] = (),
) -> dict[str, Any]:
    """Metrics for whatever is applied in ``state_dir`` right now."""
    return metrics_for(read_applied_version(state_dir), bad_versions, subtle_versions)
