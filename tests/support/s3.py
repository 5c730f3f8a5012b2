"""Where the tests find an S3-compatible server, and a bucket of their own on it.

``XDP47_TEST_S3_URL`` first (``http://KEY:SECRET@host:port``, e.g. a MinIO; the
credentials default to ``test``/``test``). Else moto's standalone server (the
``moto[server]`` package) runs as a subprocess on a free loopback port: a real
HTTP server speaking the S3 API, signatures and multipart uploads included, so
the store under test goes through its real client. Never a mock of the client.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3  # type: ignore[import-untyped]
import httpx

from tests.support.processes import free_port, wait_until

__all__ = ["S3Server", "new_bucket", "s3_server", "s3_settings"]


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://host:port
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def _from_url(url: str) -> S3Server:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return S3Server(
        endpoint=f"{parts.scheme}://{parts.hostname}{port}",
        access_key=parts.username or "test",
        secret_key=parts.password or "test",
    )


@contextlib.contextmanager
def s3_server(log_dir: Path) -> Iterator[S3Server]:
    """An S3 endpoint for the session: the environment's, else a moto server."""
    url = os.environ.get("XDP47_TEST_S3_URL")
    if url:
        yield _from_url(url)
        return
    port = free_port()
    log = (log_dir / "moto.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:

        def answers() -> None:
            assert proc.poll() is None, f"moto exited {proc.returncode}"
            httpx.get(endpoint, timeout=1).raise_for_status()

        wait_until(answers, within=60)
        yield S3Server(endpoint, "test", "test")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


def client(server: S3Server) -> Any:
    """A boto3 client of the server, for what the store under test does not do
    (creating buckets, tampering with objects)."""
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
    )


def new_bucket(server: S3Server) -> str:
    name = f"xdp47-{uuid.uuid4().hex[:16]}"
    client(server).create_bucket(Bucket=name)
    return name


def s3_settings(server: S3Server, bucket: str) -> dict[str, str]:
    """The ``XDP47_*`` environment of a service storing artifacts in ``bucket``."""
    return {
        "XDP47_BLOB_STORE": "s3",
        "XDP47_S3_BUCKET": bucket,
        "XDP47_S3_ENDPOINT": server.endpoint,
        "XDP47_S3_REGION": server.region,
        "XDP47_S3_ACCESS_KEY_ID": server.access_key,
        "XDP47_S3_SECRET_ACCESS_KEY": server.secret_key,
    }
