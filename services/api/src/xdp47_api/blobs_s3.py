"""``BlobStore`` on an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, GCS).

A put streams the body into a multipart upload under ``<prefix>tmp/<uuid>``
while hashing it, then copies it server-side to its content-addressed key
(``xdp47_common.adapters.objects.blob_key``) unless that key already holds the
same bytes, and deletes the temporary object. Memory stays bounded by the part
size times the parts in flight (``XDP47_S3_PART_SIZE`` x
``XDP47_S3_UPLOAD_CONCURRENCY``); nothing is written to local disk. A failed or
too-large upload is aborted by ``obstore`` (no part is left behind).

CopyObject copies at most 5 GiB in one request, which bounds
``XDP47_MAX_UPLOAD_BYTES`` with this store (the settings default is 512 MiB).
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator

import obstore
from obstore.store import S3Store

from xdp47_api.blobs import PROBE, BlobInfo, BlobTooLarge
from xdp47_common.adapters.objects import blob_key

__all__ = ["S3BlobStore"]


class S3BlobStore:
    """``BlobStore`` on a bucket (see the module docstring)."""

    def __init__(
        self,
        store: S3Store,
        *,
        prefix: str = "",
        part_size: int = 8 << 20,
        concurrency: int = 2,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self._part_size = part_size
        self._concurrency = concurrency

    def key_of(self, sha256: str) -> str:
        return blob_key(sha256, self.prefix)

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> BlobInfo:
        hasher = hashlib.sha256()
        size = 0

        async def hashed() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise BlobTooLarge(max_bytes)
                hasher.update(chunk)
                yield chunk

        tmp = f"{self.prefix}tmp/{uuid.uuid4().hex}"
        try:
            await obstore.put_async(
                self.store,
                tmp,
                hashed(),
                chunk_size=self._part_size,
                max_concurrency=self._concurrency,
            )
            info = BlobInfo(hasher.hexdigest(), size)
            if await self.size(info.sha256) is None:
                await obstore.copy_async(self.store, tmp, self.key_of(info.sha256))
            return info
        finally:
            # Absent after an aborted upload: nothing to remove then.
            with contextlib.suppress(FileNotFoundError):
                await obstore.delete_async(self.store, tmp)

    async def size(self, sha256: str) -> int | None:
        try:
            meta = await obstore.head_async(self.store, self.key_of(sha256))
        except (FileNotFoundError, ValueError):
            return None
        return int(meta["size"])

    async def read(self, sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        if end <= start:
            return
        result = await obstore.get_async(
            self.store, self.key_of(sha256), options={"range": (start, end)}
        )
        async for chunk in result.stream():
            yield bytes(chunk)

    async def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self.store, self.key_of(sha256))

    async def probe(self) -> None:
        key = f"{self.prefix}tmp/probe-{uuid.uuid4().hex}"
        try:
            await obstore.put_async(self.store, key, PROBE)
            got = await obstore.get_async(self.store, key)
            if bytes(await got.bytes_async()) != PROBE:
                raise OSError(f"{key} did not read back what was written")
        finally:
            with contextlib.suppress(FileNotFoundError):
                await obstore.delete_async(self.store, key)
