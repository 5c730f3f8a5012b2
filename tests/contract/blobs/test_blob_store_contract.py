"""The ``BlobStore`` contract, held by the filesystem store and the S3 store alike."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from tests.contract.blobs.conftest import PART, Harness
from xdp47_api.blobs import BlobTooLarge


async def _stream(data: bytes, piece: int = 64 << 10) -> AsyncIterator[bytes]:
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


async def _read(h: Harness, sha256: str, start: int, end: int) -> bytes:
    return b"".join([c async for c in h.store.read(sha256, start, end)])


def _stored(listing: list[str]) -> list[str]:
    return [k for k in listing if k.startswith("sha256/")]


@pytest.mark.parametrize("size", [0, 1, 1000, 2 * PART + 12345])
async def test_put_hashes_while_streaming_and_reads_back(
    harness: Harness, size: int
) -> None:
    data = os.urandom(size)
    info = await harness.store.put(_stream(data), max_bytes=size + 1)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.size == size
    assert await harness.store.size(info.sha256) == size
    assert await _read(harness, info.sha256, 0, size) == data
    # Only the content-addressed object is left: the temporary one is gone.
    digest = info.sha256
    assert await harness.listing() == [f"sha256/{digest[:2]}/{digest}"]


async def test_ranges_read_exactly_the_bytes_asked(harness: Harness) -> None:
    data = os.urandom(PART + 100)
    info = await harness.store.put(_stream(data), max_bytes=len(data))
    last = len(data)
    for start, end in [(0, 1), (5, 20), (PART - 3, PART + 7), (last - 1, last)]:
        assert await _read(harness, info.sha256, start, end) == data[start:end]


async def test_the_same_bytes_are_stored_once(harness: Harness) -> None:
    data = os.urandom(300_000)
    first = await harness.store.put(_stream(data), max_bytes=1 << 20)
    second = await harness.store.put(_stream(data, 1000), max_bytes=1 << 20)
    assert first == second
    assert len(_stored(await harness.listing())) == 1


async def test_past_the_limit_nothing_is_stored(harness: Harness) -> None:
    data = os.urandom(PART + 1)
    with pytest.raises(BlobTooLarge) as caught:
        await harness.store.put(_stream(data), max_bytes=PART)
    assert caught.value.limit == PART
    assert await harness.store.size(hashlib.sha256(data).hexdigest()) is None
    assert await harness.listing() == []


async def test_a_broken_stream_stores_nothing(harness: Harness) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield os.urandom(PART + 10)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await harness.store.put(failing(), max_bytes=1 << 30)
    assert await harness.listing() == []


async def test_delete_removes_the_bytes_and_is_idempotent(harness: Harness) -> None:
    info = await harness.store.put(_stream(b"release"), max_bytes=100)
    await harness.store.delete(info.sha256)
    assert await harness.store.size(info.sha256) is None
    await harness.store.delete(info.sha256)
    assert await harness.listing() == []


async def test_unknown_digest_has_no_size(harness: Harness) -> None:
    assert await harness.store.size("0" * 64) is None
    assert await harness.store.size("not-a-digest") is None


async def test_probe_passes_on_a_working_store_and_leaves_nothing(
    harness: Harness,
) -> None:
    await harness.store.probe()
    assert _stored(await harness.listing()) == []
    assert [k for k in await harness.listing() if "probe" in k] == []


async def test_probe_fails_on_a_store_that_cannot_be_written(harness: Harness) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - each store its own error
        await harness.broken().probe()
