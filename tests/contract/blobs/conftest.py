"""The blob store contract's fixtures: one ``Harness`` per ``BlobStore``.

Every test in this folder runs twice: against ``FsBlobStore`` in a temporary
directory and against ``S3BlobStore`` on a real S3-compatible server
(``tests.support.s3``: ``XDP47_TEST_S3_URL`` or moto's), a bucket of its own per
test. The harness adds what only a test needs: listing what the store holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.s3 import S3Server, client, new_bucket
from xdp47_api.blobs import BlobStore, FsBlobStore
from xdp47_api.blobs_s3 import S3BlobStore
from xdp47_common.adapters.objects import s3_store
from xdp47_common.settings import ControlSettings

# Small parts, so a few MiB already make a multipart upload of several parts.
PART = 5 << 20


@dataclass
class Harness:
    kind: str
    store: BlobStore
    # Every object or file the store holds, temporary ones included.
    listing: Callable[[], Awaitable[list[str]]]
    broken: Callable[[], BlobStore]  # a store that cannot be written


def _fs(root: Path) -> Harness:
    def files() -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    async def listing() -> list[str]:
        return files()

    def broken() -> BlobStore:
        blocker = root.parent / "not-a-dir"
        blocker.write_text("a file where the root should be")
        return FsBlobStore(blocker / "blobs")

    return Harness("fs", FsBlobStore(root), listing, broken)


def s3_blob_store(server: S3Server, bucket: str, prefix: str = "") -> S3BlobStore:
    settings = ControlSettings(
        blob_store="s3",
        s3_bucket=bucket,
        s3_endpoint=server.endpoint,
        s3_region=server.region,
        s3_access_key_id=server.access_key,
        s3_secret_access_key=server.secret_key,
        s3_prefix=prefix,
    )
    return S3BlobStore(s3_store(settings), prefix=prefix, part_size=PART)


def _s3(server: S3Server) -> Harness:
    bucket = new_bucket(server)
    s3c = client(server)

    async def listing() -> list[str]:
        found = s3c.list_objects_v2(Bucket=bucket).get("Contents", [])
        return sorted(o["Key"].removeprefix("p/") for o in found)

    def broken() -> BlobStore:
        return s3_blob_store(server, f"{bucket}-absent")

    return Harness("s3", s3_blob_store(server, bucket, "p/"), listing, broken)


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.integration)])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "fs":
        yield _fs(tmp_path / "blobs")
    else:
        yield _s3(request.getfixturevalue("s3"))
