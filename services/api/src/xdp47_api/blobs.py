"""Content-addressed storage of uploaded artifact bytes.

``BlobStore`` is what the routes use; ``FsBlobStore`` keeps blobs on a filesystem
under ``<root>/sha256/<ab>/<digest>``. A put streams into ``<root>/tmp/`` while
hashing, fsyncs, then renames to the digest's path and fsyncs the directory, so a
blob is either whole under its name or absent; the same bytes uploaded twice are
stored once. Several API replicas need the root on a shared volume; the
S3-compatible store (``xdp47_api.blobs_s3``) implements the same protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["PROBE", "BlobInfo", "BlobStore", "BlobTooLarge", "FsBlobStore"]

_WRITE_BATCH = 1 << 20  # bytes gathered before one write in a worker thread
_READ_CHUNK = 256 << 10


@dataclass(frozen=True)
class BlobInfo:
    sha256: str  # 64 lowercase hex characters
    size: int


class BlobTooLarge(Exception):
    """The stream passed ``max_bytes``; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


class BlobStore(Protocol):
    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> BlobInfo:
        """Store the stream; its SHA256 and size are computed while it streams.

        Raises:
            BlobTooLarge: past ``max_bytes``; nothing is stored.
        """
        ...

    async def size(self, sha256: str) -> int | None:
        """The stored size, or ``None`` when the blob is absent."""
        ...

    def read(self, sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of a stored blob."""
        ...

    async def delete(self, sha256: str) -> None:
        """Remove the blob; nothing happens when it is absent."""
        ...

    async def probe(self) -> None:
        """Write, read back and remove a small probe object (readiness).

        Raises:
            OSError: the store is not writable and readable.
        """
        ...


PROBE = b"xdp47 readiness probe\n"


def _is_digest(sha256: str) -> bool:
    return len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class FsBlobStore:
    """``BlobStore`` on a local or shared filesystem (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_of(self, sha256: str) -> Path:
        if not _is_digest(sha256):
            raise ValueError("not a lowercase hex SHA256 digest")
        return self.root / "sha256" / sha256[:2] / sha256

    def _tmp_dir(self) -> Path:
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> BlobInfo:
        tmp = await asyncio.to_thread(self._tmp_dir) / f"{uuid.uuid4().hex}.part"
        fd = await asyncio.to_thread(
            os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644
        )
        hasher = hashlib.sha256()
        size = 0
        pending: list[bytes] = []
        pending_size = 0
        try:
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLarge(max_bytes)
                    hasher.update(chunk)
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= _WRITE_BATCH:
                        await asyncio.to_thread(_write_all, fd, b"".join(pending))
                        pending, pending_size = [], 0
                if pending:
                    await asyncio.to_thread(_write_all, fd, b"".join(pending))
                await asyncio.to_thread(os.fsync, fd)
            finally:
                os.close(fd)
            info = BlobInfo(hasher.hexdigest(), size)
            await asyncio.to_thread(self._publish, tmp, self.path_of(info.sha256))
            return info
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @staticmethod
    def _publish(tmp: Path, final: Path) -> None:
        if final.exists():
            return  # same digest, same bytes: keep the stored copy
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        _fsync_dir(final.parent)

    async def size(self, sha256: str) -> int | None:
        try:
            stat = await asyncio.to_thread(os.stat, self.path_of(sha256))
        except (FileNotFoundError, ValueError):
            return None
        return stat.st_size

    async def read(self, sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(self.path_of(sha256).open, "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            left = end - start
            while left > 0:
                chunk = await asyncio.to_thread(handle.read, min(_READ_CHUNK, left))
                if not chunk:
                    raise OSError(f"blob {sha256} is shorter than expected")
                left -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    async def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(os.unlink, self.path_of(sha256))

    async def probe(self) -> None:
        await asyncio.to_thread(self._probe)

    def _probe(self) -> None:
        # Under tmp/ with a name of its own: replicas on one volume probe at once.
        path = self._tmp_dir() / f"probe-{uuid.uuid4().hex}"
        try:
            path.write_bytes(PROBE)
            if path.read_bytes() != PROBE:
                raise OSError(f"{path} did not read back what was written")
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
