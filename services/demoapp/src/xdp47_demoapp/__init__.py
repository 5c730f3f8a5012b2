"""XDP47 demo app: per-device /metrics that follow the agent's applied version."""

from xdp47_demoapp.metrics import (
    SUBTLE_ERROR_RATE,
    is_bad,
    is_subtly_bad,
    metrics_for,
    parse_bad_versions,
    read_applied_version,
    read_metrics,
)
from xdp47_demoapp.server import DemoApp

__all__ = [
    "SUBTLE_ERROR_RATE",
    "DemoApp",
    "is_bad",
    "is_subtly_bad",
    "metrics_for",
    "parse_bad_versions",
    "read_applied_version",
    "read_metrics",
]
