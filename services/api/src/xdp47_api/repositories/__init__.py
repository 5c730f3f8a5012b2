"""PostgreSQL repositories of the API: SQL as module constants, rows mapped to the
aggregates of ``xdp47_common.models``. Every query takes the caller's tenant."""

from xdp47_api.repositories.artifacts import PgArtifactRepository
from xdp47_api.repositories.devices import DeviceFilter, PgDeviceRepository
from xdp47_api.repositories.policies import PgPolicyRepository
from xdp47_api.repositories.rollouts import PgRolloutRepository
from xdp47_api.repositories.tenants import PgTenantRepository
from xdp47_api.repositories.tokens import PgTokenRepository, TokenRecord

__all__ = [
    "DeviceFilter",
    "PgArtifactRepository",
    "PgDeviceRepository",
    "PgPolicyRepository",
    "PgRolloutRepository",
    "PgTenantRepository",
    "PgTokenRepository",
    "TokenRecord",
]
