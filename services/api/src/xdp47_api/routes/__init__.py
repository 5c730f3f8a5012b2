"""HTTP routes of the API: thin functions over the use cases
(``xdp47_api.usecases``)."""

from xdp47_api.routes.artifact_content import router as artifact_content_router
from xdp47_api.routes.artifact_download import router as artifact_download_router
from xdp47_api.routes.artifacts import router as artifacts_router
from xdp47_api.routes.audit import router as audit_router
from xdp47_api.routes.device_counts import router as device_counts_router
from xdp47_api.routes.devices import router as devices_router
from xdp47_api.routes.groups import router as groups_router
from xdp47_api.routes.policies import router as policies_router
from xdp47_api.routes.rollout_progress import router as rollout_progress_router
from xdp47_api.routes.rollouts import router as rollouts_router
from xdp47_api.routes.tenants import router as tenants_router
from xdp47_api.routes.tokens import router as tokens_router

ROUTERS = (
    device_counts_router,
    devices_router,
    groups_router,
    artifacts_router,
    artifact_content_router,
    artifact_download_router,
    policies_router,
    rollouts_router,
    rollout_progress_router,
    tenants_router,
    tokens_router,
    audit_router,
)

__all__ = ["ROUTERS"]
