"""Bearer-token authentication and scope checks.

``authenticate`` is a FastAPI security dependency: it reads the ``Authorization:
Bearer`` header only (a token in the query string is refused, it would end up in
access logs), rejects a malformed token before any database query, looks the token
up by its SHA256, checks expiry and revocation on every request, records
``last_used_at`` at most once a minute, and checks the scopes the route declares
with ``Security(..., scopes=[...])``. Routes write
``principal: Annotated[Principal, require(Scope.X)]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from xdp47_api.acting import Actor, act_as
from xdp47_api.repositories.tokens import LAST_USED_RESOLUTION
from xdp47_api.state import ServicesDep
from xdp47_common.clock import utcnow
from xdp47_common.models import ALL_SCOPES, Scope, expand_scopes
from xdp47_common.tokens import SecretKind, hash_secret, looks_valid, secrets_equal
from xdp47_common.web import bind_request_context

__all__ = [
    "DEV_ACTOR",
    "Principal",
    "act_as_principal",
    "authenticate",
    "bearer_scheme",
    "not_found_tenant",
    "principal_for_digest",
    "principal_for_secret",
    "require",
]

DEV_ACTOR = "dev-token"

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="xdp47t_…",
    description="An API token (xdp47t_…) in the Authorization header.",
)

# Query parameters a client might put a token in; refused rather than ignored so
# the mistake is visible.
_TOKEN_QUERY_NAMES = frozenset({"access_token", "token", "api_token", "api_key"})


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant and the scopes the token holds (expanded)."""

    tenant: str
    scopes: frozenset[Scope]
    token_id: UUID | None  # None for the dev token
    token_name: str | None = None  # the name it was minted with

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes

    @property
    def actor(self) -> str:
        """Who acted, as commands and reasons record it: a token by its id, which
        stays unique; the UI shows the token's name in its place."""
        return DEV_ACTOR if self.token_id is None else f"token:{self.token_id}"

    @property
    def display_name(self) -> str:
        """The name a person reads for this caller."""
        return self.token_name or DEV_ACTOR

    def own_tenant(self, tenant: str) -> None:
        """Refuse a ``tenant`` body field that is not the caller's, like a
        nonexistent tenant, so tenant ids cannot be probed."""
        if tenant != self.tenant:
            raise not_found_tenant(tenant)


def act_as_principal(principal: Principal) -> None:
    """Name ``principal`` as this request's actor (the audit trail's who)."""
    act_as(Actor(principal.actor, principal.display_name, principal.tenant))


def not_found_tenant(tenant: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"tenant '{tenant}' not found")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def _refuse_query_tokens(request: Request) -> None:
    for name, value in request.query_params.multi_items():
        if name.lower() in _TOKEN_QUERY_NAMES or value.startswith(
            SecretKind.API_TOKEN.value
        ):
            raise _unauthorized(
                "tokens are accepted only in the Authorization: Bearer header, "
                "never in the query string"
            )


async def authenticate(
    request: Request,
    security_scopes: SecurityScopes,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """Resolve the caller from the bearer token and check the route's scopes.

    Raises:
        HTTPException: 401 for a missing, malformed, unknown, expired or revoked
            token (with ``WWW-Authenticate: Bearer``); 403 naming the missing scope.
    """
    _refuse_query_tokens(request)
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing bearer token")
    principal = await _principal(services, credentials.credentials)
    bind_request_context(tenant=principal.tenant)
    for name in security_scopes.scopes:
        if not principal.has(Scope(name)):
            raise HTTPException(
                status_code=403, detail=f"this token lacks the scope '{name}'"
            )
    act_as_principal(principal)
    return principal


async def _principal(services: ServicesDep, secret: str) -> Principal:
    digest = hash_secret(secret)
    if _is_dev_token(services, digest):
        return _dev_principal(services)
    if not looks_valid(secret, SecretKind.API_TOKEN):
        raise _unauthorized("malformed token")
    return await principal_for_digest(services, digest)


def _is_dev_token(services: ServicesDep, digest: bytes) -> bool:
    settings = services.settings
    return settings.dev_token_enabled and secrets_equal(
        digest, hash_secret(settings.agent_token.get_secret_value())
    )


def _dev_principal(services: ServicesDep) -> Principal:
    return Principal(
        tenant=services.settings.dev_tenant, scopes=ALL_SCOPES, token_id=None
    )


async def principal_for_secret(services: ServicesDep, secret: str) -> Principal:
    """Resolve a presented token exactly as ``authenticate`` does (the web UI's
    sign-in uses it).

    Raises:
        HTTPException: 401 for a malformed, unknown, expired or revoked token.
    """
    return await _principal(services, secret)


async def principal_for_digest(services: ServicesDep, digest: bytes) -> Principal:
    """Resolve a token by its SHA256 (the web UI keeps only that in a session),
    re-checking revocation and expiry on every call.

    Raises:
        HTTPException: 401 for an unknown, expired or revoked token.
    """
    if _is_dev_token(services, digest):
        return _dev_principal(services)
    tokens = services.repos.tokens
    record = await tokens.lookup(digest)
    if record is None:
        raise _unauthorized("unknown token")
    now = utcnow()
    if record.revoked_at is not None:
        raise _unauthorized("token revoked")
    if record.expires_at is not None and record.expires_at <= now:
        raise _unauthorized("token expired")
    if record.last_used_at is None or now - record.last_used_at >= (
        LAST_USED_RESOLUTION
    ):
        await tokens.touch(record.id, now)
    return Principal(
        tenant=record.tenant,
        scopes=expand_scopes(record.scopes),
        token_id=record.id,
        token_name=record.name,
    )


def require(scope: Scope) -> Any:
    """The dependency marker for a route needing ``scope``:
    ``Annotated[Principal, require(Scope.DEVICES_READ)]``."""
    return Security(authenticate, scopes=[scope.value])
