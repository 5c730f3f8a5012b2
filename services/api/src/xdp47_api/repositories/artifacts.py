"""Artifacts: releases pinned by SHA256, per tenant. ``content_stored`` marks the
ones whose bytes the control plane holds (uploaded) and serves."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from xdp47_api.acting import audit_entry
from xdp47_api.pagination import Page, time_id_cursor
from xdp47_api.repositories._paging import page_of, time_id_key
from xdp47_api.repositories._trail import record, writing
from xdp47_common.models import Artifact, ArtifactCreate

__all__ = ["PgArtifactRepository"]

_COLUMNS = (
    "id, tenant, uri, sha256, size, type, version, signature, metadata, "
    "compatible, created_at"
)

INSERT_ARTIFACT = f"""
INSERT INTO artifacts (id, tenant, uri, sha256, size, type, version, signature,
                       metadata, content_stored, compatible)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING {_COLUMNS}
"""  # nosec B608
# A deleted artifact (``deleted_at``: a finished rollout still names it) is
# hidden from every read here.
GET_ARTIFACT = f"""
SELECT {_COLUMNS} FROM artifacts
WHERE tenant = $1 AND id = $2 AND deleted_at IS NULL
"""  # nosec B608
GET_STORED_ARTIFACT = GET_ARTIFACT + " AND content_stored"
LIST_ARTIFACTS = f"""
SELECT {_COLUMNS} FROM artifacts
WHERE tenant = $1 AND deleted_at IS NULL
  AND ($2::text IS NULL OR version = $2)
  AND ($3::text IS NULL OR type = $3)
  AND ($4::timestamptz IS NULL OR (created_at, id) > ($4, $5::uuid))
ORDER BY created_at, id LIMIT $6
"""  # nosec B608


def _artifact(row: asyncpg.Record) -> Artifact:
    return Artifact.model_validate(dict(row))


class PgArtifactRepository:
    def __init__(
        self,
        pool: asyncpg.Pool[Any] | asyncpg.Connection[Any] | PoolConnectionProxy[Any],
    ) -> None:
        self._pool = pool

    async def create(
        self,
        body: ArtifactCreate,
        *,
        artifact_id: UUID | None = None,
        content_stored: bool = False,
    ) -> Artifact:
        """Insert an artifact; an upload passes the id its ``uri`` names and
        ``content_stored=True``."""
        async with writing(self._pool) as conn:
            row = await conn.fetchrow(
                INSERT_ARTIFACT,
                artifact_id or uuid4(),
                body.tenant,
                str(body.uri),
                body.sha256,
                body.size,
                body.type,
                body.version,
                body.signature,
                body.metadata,
                content_stored,
                body.compatible,
            )
            assert row is not None
            created = _artifact(row)
            action = "artifact.uploaded" if content_stored else "artifact.created"
            detail = {
                "version": created.version,
                "type": created.type,
                "sha256": created.sha256,
                "size": created.size,
            }
            await record(
                conn,
                audit_entry(
                    created.tenant, action, "artifact", created.id, detail=detail
                ),
            )
        return created

    async def get(self, tenant: str, artifact_id: UUID) -> Artifact | None:
        row = await self._pool.fetchrow(GET_ARTIFACT, tenant, artifact_id)
        return None if row is None else _artifact(row)

    async def get_stored(self, tenant: str, artifact_id: UUID) -> Artifact | None:
        """The artifact if it is the tenant's and its content was uploaded."""
        row = await self._pool.fetchrow(GET_STORED_ARTIFACT, tenant, artifact_id)
        return None if row is None else _artifact(row)

    async def list(
        self,
        tenant: str,
        *,
        version: str | None,
        type_: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Artifact]:
        at, ident = time_id_cursor(cursor) or (None, None)
        rows = await self._pool.fetch(
            LIST_ARTIFACTS, tenant, version, type_, at, ident, limit + 1
        )
        return page_of([_artifact(r) for r in rows], limit, time_id_key)
