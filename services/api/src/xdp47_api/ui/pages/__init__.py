"""The UI's pages, one router per area, gathered in ``PAGE_ROUTERS``."""

from xdp47_api.ui.pages.artifact_delete import router as artifact_delete_router
from xdp47_api.ui.pages.artifact_upload import router as artifact_upload_router
from xdp47_api.ui.pages.artifacts import router as artifacts_router
from xdp47_api.ui.pages.audit import router as audit_router
from xdp47_api.ui.pages.device_detail import router as device_detail_router
from xdp47_api.ui.pages.devices import router as devices_router
from xdp47_api.ui.pages.groups import router as groups_router
from xdp47_api.ui.pages.policies import router as policies_router
from xdp47_api.ui.pages.rollout_detail import router as rollout_detail_router
from xdp47_api.ui.pages.rollout_devices import router as rollout_devices_router
from xdp47_api.ui.pages.rollout_rollback import router as rollout_rollback_router
from xdp47_api.ui.pages.rollouts import router as rollouts_router
from xdp47_api.ui.pages.signin import router as signin_router
from xdp47_api.ui.pages.system import router as system_router
from xdp47_api.ui.pages.tenants import router as tenants_router
from xdp47_api.ui.pages.webhooks import router as webhooks_router

PAGE_ROUTERS = (
    signin_router,
    devices_router,
    groups_router,
    device_detail_router,
    artifacts_router,
    artifact_upload_router,
    artifact_delete_router,
    policies_router,
    # Before ``rollouts``: its ``POST /{id}/{verb}`` would take ``/rollback``.
    rollout_rollback_router,
    rollouts_router,
    rollout_detail_router,
    rollout_devices_router,
    tenants_router,
    audit_router,
    webhooks_router,
    system_router,
)

__all__ = ["PAGE_ROUTERS"]
