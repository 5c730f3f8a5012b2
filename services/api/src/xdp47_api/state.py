"""The per-process services the routes, pages and use cases use, owned by the
app lifespan.

Routes reach them through the ``Annotated`` dependency below, never through
module globals, so a test can build as many apps as it likes. The repositories
come with them (``services.repos``): nothing outside ``xdp47_api.repositories``
builds one or touches the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from xdp47_api.blobs import BlobStore
from xdp47_api.repositories.registry import Repositories
from xdp47_common.bus import Bus
from xdp47_common.settings import ControlSettings
from xdp47_common.topology import Topology

__all__ = ["Services", "ServicesDep", "get_services"]


@dataclass
class Services:
    settings: ControlSettings
    repos: Repositories
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
