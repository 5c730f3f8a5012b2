"""Minting an API token: a fresh secret, stored only as its SHA256, returned once.

Shared by ``POST /api/tokens`` (which first checks the caller may mint the scopes)
and ``xdp47-admin mint-token`` (the operator's first token, straight to the
database), so both store exactly the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from uuid import UUID

from xdp47_api.repositories.tokens import PgTokenRepository
from xdp47_common.clock import utcnow
from xdp47_common.models import ApiTokenCreated, Scope
from xdp47_common.tokens import SecretKind, display_prefix, hash_secret, new_secret

__all__ = ["mint_token"]


async def mint_token(
    tokens: PgTokenRepository,
    *,
    tenant: str,
    name: str,
    scopes: Iterable[Scope],
    created_by: UUID | None,
    expires_in_days: int | None,
) -> ApiTokenCreated:
    """Store a new token of ``tenant`` and return it with its secret."""
    secret = new_secret(SecretKind.API_TOKEN)
    expires_at = (
        None if expires_in_days is None else utcnow() + timedelta(days=expires_in_days)
    )
    token = await tokens.create(
        tenant=tenant,
        name=name,
        prefix=display_prefix(secret),
        token_hash=hash_secret(secret),
        scopes=sorted(set(scopes)),
        created_by=created_by,
        expires_at=expires_at,
    )
    return ApiTokenCreated(**token.model_dump(), token=secret)
