"""Bounded, streamed artifact download into the staging dir.

Never writes more than the declared size (or the configured maximum when none is
declared), gives up when no byte arrives for ``stall_timeout`` or the whole
transfer exceeds ``deadline``, only speaks http(s), and follows a redirect only
to the same scheme, host and port. The partial file is removed on every failure.

The device credential is sent (``Authorization: Bearer``) only to an origin the
agent already trusts with it, the control or ingest URL, where the control plane
serves uploaded artifacts; a third-party artifact host (a presigned bucket URL, a
CDN) never sees it.

A connection that drops in the middle of the body is resumed, up to
``_RESUMES`` times per download, with ``Range: bytes=<received>-`` and
``If-Range: <ETag>`` (the api's ranged download, S3 and CDNs all serve ranges);
the SHA256 runs on over the appended bytes. A server that answers the whole body
instead (200: it ignores ranges, or the ETag changed) starts the file over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from xdp47_agent.fsutil import FaultHook, no_fault
from xdp47_agent.verify import ApplyRefused, Reason, refusal_for_os_error

__all__ = ["DownloadLimits", "check_uri", "download", "origin_trusted"]

_MAX_REDIRECTS = 3
_RESUMES = 3


@dataclass(frozen=True)
class DownloadLimits:
    max_bytes: int
    stall_timeout: float
    deadline: float
    connect_timeout: float = 10.0


def check_uri(uri: str) -> httpx.URL:
    """Refuse anything but a plain http(s) URL with a host and no userinfo.

    Raises:
        ApplyRefused: with ``Reason.URI_REFUSED``.
    """
    try:
        url = httpx.URL(uri)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ApplyRefused(Reason.URI_REFUSED, "not a URL") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ApplyRefused(Reason.URI_REFUSED, f"scheme {url.scheme!r} not allowed")
    if url.userinfo:
        raise ApplyRefused(Reason.URI_REFUSED, "credentials in the URL")
    return url


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def origin_trusted(url: httpx.URL, trusted: Iterable[str]) -> bool:
    """Whether ``url`` has the scheme, host and port of one of ``trusted``."""
    # httpx.URL.port is None for the scheme's default port, on both sides.
    return any(_same_origin(url, httpx.URL(base)) for base in trusted)


async def _open(
    client: httpx.AsyncClient,
    url: httpx.URL,
    http_timeout: httpx.Timeout,
    credential: str | None,
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    origin = url
    headers = {"Accept-Encoding": "identity", **(extra or {})}
    if credential is not None:
        headers["Authorization"] = f"Bearer {credential}"
    for _ in range(_MAX_REDIRECTS + 1):
        # Redirects stay on the first URL's origin (below), so the credential
        # never follows one to another host.
        request = client.build_request(
            "GET", url, headers=headers, timeout=http_timeout
        )
        response = await client.send(request, stream=True, follow_redirects=False)
        if not response.is_redirect:
            return response
        await response.aclose()
        target = url.join(response.headers.get("location", ""))
        if not _same_origin(origin, target):
            raise ApplyRefused(
                Reason.REDIRECT_REFUSED,
                f"to {target.scheme}://{target.host}:{target.port or ''}",
            )
        url = target
    raise ApplyRefused(Reason.REDIRECT_REFUSED, f"more than {_MAX_REDIRECTS}")


@dataclass
class _Progress:
    """What is in the file so far, kept across resumed requests."""

    hasher: Any = field(default_factory=hashlib.sha256)
    received: int = 0
    etag: str | None = None  # a strong ETag of the first answer, for If-Range

    def restart(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        self.hasher, self.received = hashlib.sha256(), 0


async def _stream_to(
    response: httpx.Response,
    fd: int,
    limit: int,
    fault: FaultHook,
    progress: _Progress,
) -> None:
    async for chunk in response.aiter_bytes():
        if progress.received + len(chunk) > limit:
            raise ApplyRefused(Reason.SIZE_EXCEEDED, f"more than {limit} bytes")
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
        progress.hasher.update(chunk)
        progress.received += len(chunk)
        fault("download:chunk")


def _check_answer(response: httpx.Response, progress: _Progress, fd: int) -> None:
    """Accept a 200 (from the start) or the 206 that continues ``progress``."""
    status = response.status_code
    if status == 206 and progress.received:
        content_range = response.headers.get("content-range", "")
        if not content_range.startswith(f"bytes {progress.received}-"):
            raise ApplyRefused(Reason.HTTP_ERROR, f"Content-Range {content_range!r}")
        return
    if status != 200:
        raise ApplyRefused(Reason.HTTP_ERROR, f"HTTP {status}")
    if progress.received:  # the whole body again: ranges ignored, or it changed
        progress.restart(fd)
    etag = response.headers.get("etag")
    progress.etag = etag if etag and not etag.startswith("W/") else None


async def _fetch(
    client: httpx.AsyncClient,
    url: httpx.URL,
    fd: int,
    *,
    limit: int,
    http_timeout: httpx.Timeout,
    credential: str | None,
    fault: FaultHook,
) -> _Progress:
    progress = _Progress()
    for attempt in range(_RESUMES + 1):
        extra: dict[str, str] = {}
        if progress.received:
            extra["Range"] = f"bytes={progress.received}-"
            if progress.etag:
                extra["If-Range"] = progress.etag
        response = await _open(client, url, http_timeout, credential, extra)
        try:
            _check_answer(response, progress, fd)
            declared = response.headers.get("content-length")
            left = limit - progress.received
            if declared is not None and declared.isdigit() and int(declared) > left:
                raise ApplyRefused(
                    Reason.SIZE_EXCEEDED, f"Content-Length {declared} > {left}"
                )
            await _stream_to(response, fd, limit, fault, progress)
        except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
            if attempt < _RESUMES and progress.received:
                continue  # the connection dropped mid-body: ask for the rest
            declared = response.headers.get("content-length")
            if isinstance(exc, httpx.RemoteProtocolError) and declared is not None:
                # The server promised more (Content-Length) and closed early: a
                # truncated body, which is a size problem, not a refused download.
                raise ApplyRefused(
                    Reason.SIZE_MISMATCH,
                    f"connection closed after {progress.received} bytes "
                    f"(this answer declared {declared})",
                ) from exc
            raise
        finally:
            await response.aclose()
        break
    os.fsync(fd)
    return progress


async def download(
    client: httpx.AsyncClient,
    uri: str,
    dest: Path,
    *,
    size: int | None,
    limits: DownloadLimits,
    fault: FaultHook = no_fault,
    credential: str | None = None,
    trusted_origins: Iterable[str] = (),
) -> bytes:
    """Download ``uri`` into ``dest`` (fsynced) and return its SHA256 digest.

    ``credential`` is sent as a bearer token only when ``uri`` has the origin of
    one of ``trusted_origins`` (the control and ingest base URLs).

    Raises:
        ApplyRefused: for every refusal; ``dest`` is gone afterwards.
    """
    url = check_uri(uri)
    send_credential = credential if origin_trusted(url, trusted_origins) else None
    if size is not None and size > limits.max_bytes:
        raise ApplyRefused(
            Reason.SIZE_EXCEEDED, f"declared {size} > {limits.max_bytes}"
        )
    limit = limits.max_bytes if size is None else size
    timeout = httpx.Timeout(
        limits.stall_timeout,
        connect=limits.connect_timeout,
        pool=limits.connect_timeout,
    )
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        raise refusal_for_os_error(exc) from exc
    try:
        async with asyncio.timeout(limits.deadline):
            progress = await _fetch(
                client,
                url,
                fd,
                limit=limit,
                http_timeout=timeout,
                credential=send_credential,
                fault=fault,
            )
        received = progress.received
        if size is not None and received != size:
            raise ApplyRefused(Reason.SIZE_MISMATCH, f"got {received} of {size} bytes")
        digest: bytes = progress.hasher.digest()
        return digest
    except BaseException as exc:
        os.close(fd)
        fd = -1
        # The unlink fails too on a state dir that turned read-only; the refusal
        # must still be reported (recovery removes the partial file later).
        with contextlib.suppress(OSError):
            os.unlink(dest)
        if isinstance(exc, ApplyRefused):
            raise
        if isinstance(exc, TimeoutError):
            raise ApplyRefused(Reason.DEADLINE, f"after {limits.deadline}s") from exc
        if isinstance(exc, httpx.TimeoutException):
            raise ApplyRefused(Reason.STALLED, type(exc).__name__) from exc
        if isinstance(exc, httpx.HTTPError):
            raise ApplyRefused(Reason.HTTP_ERROR, type(exc).__name__) from exc
        if isinstance(exc, OSError):
            raise refusal_for_os_error(exc) from exc
        raise
    finally:
        if fd >= 0:
            os.close(fd)
