"""The per-process services the routes use, owned by the app lifespan.

Routes reach them through the ``Annotated`` dependencies below, never through
module globals, so a test can build as many apps as it likes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request

from xdp47_api.blobs import BlobStore
from xdp47_common.bus import Bus
from xdp47_common.settings import ControlSettings
from xdp47_common.topology import Topology

__all__ = ["Services", "ServicesDep", "get_services"]


@dataclass
class Services:
    settings: ControlSettings
    pool: asyncpg.Pool[Any]
    bus: Bus
    topology: Topology
    blobs: BlobStore

    @property
    def publisher(self) -> Bus:
        """The bus in its publishing role (commands)."""
        return self.bus


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
