"""Deleting an artifact (refused while it is needed, its bytes kept while shared)
and recording an uploaded one, both under the lock of their bytes' digest.

An artifact is needed while a rollout that names it is ``draft`` or ``running``
(starting or running it sends devices to it) or while a device's kept desired
state (``devices.desired_artifact_id``) names it: a device told to keep running
it must be able to download it again. Otherwise its row goes (a tombstone,
``deleted_at``, when a finished rollout still names it: history keeps its
release) and, when it was uploaded and no other live artifact of any tenant has
the same SHA256, so do the stored bytes.

The bytes and the rows that need them are decided under one PostgreSQL advisory
lock per digest (``blob_lock``), held by the deletion from its check until the
object is gone and by an upload while it records its row, so an upload of the
same bytes racing a deletion either keeps them or finds them gone and says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from xdp47_api.acting import audit_entry
from xdp47_api.blobs import BlobStore
from xdp47_api.repositories._trail import record
from xdp47_api.repositories.artifacts import PgArtifactRepository
from xdp47_common.models import Artifact, ArtifactCreate

__all__ = [
    "ArtifactInUse",
    "Connection",
    "blob_lock",
    "delete_artifact",
    "record_upload",
]

Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

LOCK_ARTIFACT = """
SELECT sha256, content_stored FROM artifacts
WHERE tenant = $1 AND id = $2 AND deleted_at IS NULL
FOR UPDATE
"""
NEEDED_BY = """
SELECT (SELECT count(*) FROM rollouts
        WHERE tenant = $1 AND artifact_id = $2
          AND status IN ('draft', 'running')) AS rollouts,
       (SELECT count(*) FROM devices
        WHERE tenant = $1 AND desired_artifact_id = $2) AS devices
"""
NAMED_BY_A_ROLLOUT = (
    "SELECT EXISTS (SELECT 1 FROM rollouts WHERE tenant = $1 AND artifact_id = $2)"
)
TOMBSTONE = "UPDATE artifacts SET deleted_at = now() WHERE tenant = $1 AND id = $2"
REMOVE = "DELETE FROM artifacts WHERE tenant = $1 AND id = $2"
BYTES_SHARED = """
SELECT EXISTS (SELECT 1 FROM artifacts
               WHERE sha256 = $1 AND content_stored AND deleted_at IS NULL)
"""


class ArtifactInUse(Exception):
    """Something still needs the artifact (409); the message says what."""


@contextlib.asynccontextmanager
async def blob_lock(conn: Connection, sha256: str) -> AsyncIterator[None]:
    """Hold the session advisory lock of one digest on ``conn``."""
    key = f"xdp47-blob:{sha256}"
    await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", key)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)


async def delete_artifact(
    pool: asyncpg.Pool[Any], blobs: BlobStore, tenant: str, artifact_id: UUID
) -> bool:
    """Delete one of ``tenant``'s artifacts; ``False`` when there is none.

    Raises:
        ArtifactInUse: a draft or running rollout, or a device's kept desired
            state, names it; nothing is changed.
    """
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT sha256 FROM artifacts "
            "WHERE tenant = $1 AND id = $2 AND deleted_at IS NULL",
            tenant,
            artifact_id,
        )
        if row is None:
            return False
        async with blob_lock(conn, row["sha256"]):
            async with conn.transaction():
                locked = await conn.fetchrow(LOCK_ARTIFACT, tenant, artifact_id)
                if locked is None:  # deleted meanwhile
                    return False
                needed = await conn.fetchrow(NEEDED_BY, tenant, artifact_id)
                assert needed is not None
                if needed["rollouts"] or needed["devices"]:
                    raise ArtifactInUse(_in_use(needed["rollouts"], needed["devices"]))
                named = await conn.fetchval(NAMED_BY_A_ROLLOUT, tenant, artifact_id)
                await conn.execute(TOMBSTONE if named else REMOVE, tenant, artifact_id)
                await record(
                    conn,
                    audit_entry(
                        tenant,
                        "artifact.deleted",
                        "artifact",
                        artifact_id,
                        detail={"sha256": locked["sha256"], "kept_as_tombstone": named},
                    ),
                )
                shared = await conn.fetchval(BYTES_SHARED, locked["sha256"])
            # Committed: the row is gone. Still under the digest's lock, so no
            # upload of the same bytes records a row before the object is gone.
            if locked["content_stored"] and not shared:
                await blobs.delete(locked["sha256"])
    return True


def _in_use(rollouts: int, devices: int) -> str:
    parts = []
    if rollouts:
        parts.append(f"{rollouts} draft or running rollout(s)")
    if devices:
        parts.append(f"the kept desired state of {devices} device(s)")
    return "artifact is still needed by " + " and ".join(parts)


async def record_upload(
    pool: asyncpg.Pool[Any], blobs: BlobStore, body: ArtifactCreate, artifact_id: UUID
) -> Artifact | None:
    """Save the artifact of uploaded bytes; ``None`` when a concurrent deletion
    of an artifact with the same bytes removed them meanwhile.

    Under the digest's lock: a deletion of another artifact with these bytes
    either sees this row (and keeps them) or has removed them already.
    """
    async with pool.acquire() as conn, blob_lock(conn, body.sha256):
        if await blobs.size(body.sha256) is None:
            return None
        return await PgArtifactRepository(conn).create(
            body, artifact_id=artifact_id, content_stored=True
        )
