"""API token aggregate and the scope vocabulary.

A token belongs to one tenant and carries scopes. ``<area>:write`` implies
``<area>:read``; ``devices:write`` also implies ``devices:claim``;
``rollouts:approve`` (approve a wave that awaits approval) implies
``rollouts:read`` and nothing else, so an approver need not be able to start.
``tenants:write`` is the platform-operator scope: it creates tenants and may mint
tokens for them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import Field

from xdp47_common.models.base import Name, NotBool, ReadModel, TenantId, WriteModel

__all__ = [
    "ALL_SCOPES",
    "READ_SCOPES",
    "ApiToken",
    "ApiTokenCreate",
    "ApiTokenCreated",
    "Scope",
    "expand_scopes",
]


class Scope(StrEnum):
    DEVICES_READ = "devices:read"
    DEVICES_CLAIM = "devices:claim"
    DEVICES_WRITE = "devices:write"
    ARTIFACTS_READ = "artifacts:read"
    ARTIFACTS_WRITE = "artifacts:write"
    POLICIES_READ = "policies:read"
    POLICIES_WRITE = "policies:write"
    ROLLOUTS_READ = "rollouts:read"
    ROLLOUTS_WRITE = "rollouts:write"
    ROLLOUTS_APPROVE = "rollouts:approve"
    TENANTS_READ = "tenants:read"
    TENANTS_WRITE = "tenants:write"
    TOKENS_READ = "tokens:read"
    TOKENS_WRITE = "tokens:write"
    # The audit trail names every token and action of the tenant: its own
    # scope, implied by no other.
    AUDIT_READ = "audit:read"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)
READ_SCOPES: frozenset[Scope] = frozenset(s for s in Scope if s.endswith(":read"))

_IMPLIED: dict[Scope, frozenset[Scope]] = {
    Scope.DEVICES_WRITE: frozenset({Scope.DEVICES_READ, Scope.DEVICES_CLAIM}),
    Scope.ARTIFACTS_WRITE: frozenset({Scope.ARTIFACTS_READ}),
    Scope.POLICIES_WRITE: frozenset({Scope.POLICIES_READ}),
    Scope.ROLLOUTS_WRITE: frozenset({Scope.ROLLOUTS_READ}),
    Scope.ROLLOUTS_APPROVE: frozenset({Scope.ROLLOUTS_READ}),
    Scope.TENANTS_WRITE: frozenset({Scope.TENANTS_READ}),
    Scope.TOKENS_WRITE: frozenset({Scope.TOKENS_READ}),
}


def expand_scopes(scopes: frozenset[Scope] | set[Scope]) -> frozenset[Scope]:
    """Return ``scopes`` together with every scope they imply.

    Args:
        scopes: scopes as granted to a token.

    Returns:
        The closure of ``scopes`` under the implication table.
    """
    out = set(scopes)
    for scope in scopes:
        out |= _IMPLIED.get(scope, frozenset())
    return frozenset(out)


class ApiTokenCreate(WriteModel):
    name: Annotated[Name, Field(min_length=1, max_length=100)]
    scopes: Annotated[list[Scope], Field(min_length=1)]
    tenant: TenantId | None = Field(
        default=None,
        description="Tenant of the new token; defaults to the caller's. Another "
        "tenant needs the tenants:write scope.",
    )
    expires_in_days: Annotated[int, Field(ge=1, le=3650), NotBool] | None = Field(
        default=90, description="Lifetime in days; null for a token that never expires."
    )


class ApiToken(ReadModel):
    id: UUID
    tenant: str
    name: str
    prefix: str = Field(description="The first characters of the token, for display.")
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiTokenCreated(ApiToken):
    token: str = Field(description="The secret. Shown once; only its hash is stored.")
