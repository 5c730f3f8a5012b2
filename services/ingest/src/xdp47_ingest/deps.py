"""What the device endpoints use while the app runs (``app.state.deps``)."""

from __future__ import annotations

from dataclasses import dataclass

from xdp47_common.bus import Bus
from xdp47_common.topology import Topology
from xdp47_ingest.batcher import HeartbeatBatcher
from xdp47_ingest.cache import DesiredCache
from xdp47_ingest.pg import Pool

__all__ = ["Deps"]


@dataclass
class Deps:
    """Set by the app's lifespan, read by ``DeviceRoutes`` and the checks."""

    pool: Pool
    publisher: Bus
    topology: Topology
    cache: DesiredCache
    batcher: HeartbeatBatcher
