"""The API's repositories over one pool, built once by the app's lifespan.

Routes and pages reach them as ``services.repos`` (the ``ServicesDep``
dependency), never by building a ``Pg*Repository`` themselves, so a use case
names what it needs by intent and the pool stays an adapter's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from xdp47_api.blobs import BlobStore
from xdp47_api.repositories import artifact_deletion
from xdp47_api.repositories.artifacts import PgArtifactRepository
from xdp47_api.repositories.audit import PgAuditRepository
from xdp47_api.repositories.device_counts import PgDeviceCounts
from xdp47_api.repositories.devices import PgDeviceRepository
from xdp47_api.repositories.groups import PgGroupRepository
from xdp47_api.repositories.policies import PgPolicyRepository
from xdp47_api.repositories.rollout_progress import PgRolloutProgressRepository
from xdp47_api.repositories.rollouts import PgRolloutRepository
from xdp47_api.repositories.tenants import PgTenantRepository
from xdp47_api.repositories.tokens import PgTokenRepository
from xdp47_api.repositories.ui_sessions import PgUiSessionRepository
from xdp47_common.models import Artifact, ArtifactCreate

__all__ = ["PoolStats", "Repositories"]


@dataclass(frozen=True)
class PoolStats:
    """The connection pool's figures, for the system page."""

    size: int
    idle: int
    max: int
    min: int


@dataclass(frozen=True)
class Repositories:
    """Every repository of the API over ``pool``."""

    pool: asyncpg.Pool[Any]
    artifacts: PgArtifactRepository = field(init=False)
    audit: PgAuditRepository = field(init=False)
    devices: PgDeviceRepository = field(init=False)
    device_counts: PgDeviceCounts = field(init=False)
    groups: PgGroupRepository = field(init=False)
    policies: PgPolicyRepository = field(init=False)
    progress: PgRolloutProgressRepository = field(init=False)
    rollouts: PgRolloutRepository = field(init=False)
    tenants: PgTenantRepository = field(init=False)
    tokens: PgTokenRepository = field(init=False)
    ui_sessions: PgUiSessionRepository = field(init=False)

    def __post_init__(self) -> None:
        built = {
            "artifacts": PgArtifactRepository(self.pool),
            "audit": PgAuditRepository(self.pool),
            "devices": PgDeviceRepository(self.pool),
            "device_counts": PgDeviceCounts(self.pool),
            "groups": PgGroupRepository(self.pool),
            "policies": PgPolicyRepository(self.pool),
            "progress": PgRolloutProgressRepository(self.pool),
            "rollouts": PgRolloutRepository(self.pool),
            "tenants": PgTenantRepository(self.pool),
            "tokens": PgTokenRepository(self.pool),
            "ui_sessions": PgUiSessionRepository(self.pool),
        }
        for name, repo in built.items():
            object.__setattr__(self, name, repo)

    async def delete_artifact(
        self, blobs: BlobStore, tenant: str, artifact_id: UUID
    ) -> bool:
        """``artifact_deletion.delete_artifact`` (raises ``ArtifactInUse``)."""
        return await artifact_deletion.delete_artifact(
            self.pool, blobs, tenant, artifact_id
        )

    async def record_upload(
        self, blobs: BlobStore, body: ArtifactCreate, artifact_id: UUID
    ) -> Artifact | None:
        """``artifact_deletion.record_upload``: ``None`` when the bytes are gone."""
        return await artifact_deletion.record_upload(
            self.pool, blobs, body, artifact_id
        )

    async def ping(self) -> None:
        """Raise unless PostgreSQL answers (the readiness check)."""
        await self.pool.fetchval("SELECT 1")

    def pool_stats(self) -> PoolStats:
        return PoolStats(
            size=self.pool.get_size(),
            idle=self.pool.get_idle_size(),
            max=self.pool.get_max_size(),
            min=self.pool.get_min_size(),
        )
