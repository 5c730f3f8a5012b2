"""Routes open to a tenant's devices as well as to tokens: the artifact download.

``require_device_or(scope)`` accepts a device credential (``xdp47d_…``, looked up
by its SHA256 in ``devices.credential_hash``) or an API token with ``scope``, and
resolves to the caller's tenant. In OpenAPI it declares the same bearer
requirement with ``scope`` as ``require``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, SecurityScopes

from xdp47_api.auth import authenticate, bearer_scheme
from xdp47_api.state import ServicesDep
from xdp47_common.models import Scope
from xdp47_common.tokens import SecretKind
from xdp47_common.web import bind_request_context

__all__ = ["authenticate_device_or_token", "require_device_or"]


async def authenticate_device_or_token(
    request: Request,
    security_scopes: SecurityScopes,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The caller's tenant: a device credential's, or a token's with the scopes.

    Raises:
        HTTPException: 401 for a missing, malformed or unknown credential or
            token (or any secret in the query string); 403 when a token lacks
            the route's scope.
    """
    secret = credentials.credentials if credentials else ""
    if not secret.startswith(SecretKind.DEVICE_CREDENTIAL.value):
        principal = await authenticate(request, security_scopes, services, credentials)
        return principal.tenant
    if request.url.query:
        # The download URL has no query parameters; refusing them all keeps a
        # secret pasted into one out of access logs, as for tokens.
        raise _unauthorized("this URL takes no query parameters")
    device = await services.repos.devices.identify(secret)
    if device is None:
        raise _unauthorized("unknown or malformed device credential")
    bind_request_context(tenant=device.tenant, device_id=device.device_id)
    return device.tenant


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def require_device_or(scope: Scope) -> Any:
    """The dependency marker for a route open to the tenant's devices and to
    tokens with ``scope``: ``Annotated[str, require_device_or(Scope.X)]``."""
    return Security(authenticate_device_or_token, scopes=[scope.value])
