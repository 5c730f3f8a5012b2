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

import contextlib
import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from xdp47_agent.config import AgentConfig
from xdp47_agent.fsutil import FaultHook, no_fault
from xdp47_agent.http import (
    BodyCut,
    ConnectionLost,
    DeadlineExceeded,
    Http,
    HttpError,
    ReadTimeout,
    Response,
    origin,
)
from xdp47_agent.verify import ApplyRefused, Reason, refusal_for_os_error

__all__ = ["DownloadLimits", "check_uri", "download", "limits_of", "origin_trusted"]

_MAX_REDIRECTS = 3
_RESUMES = 3


@dataclass(frozen=True)
class DownloadLimits:
    max_bytes: int
    stall_timeout: float
    deadline: float
    connect_timeout: float = 10.0


def limits_of(config: AgentConfig) -> DownloadLimits:
    """The bounds ``config`` sets on a download."""
    return DownloadLimits(
        max_bytes=config.max_artifact_bytes,
        stall_timeout=config.download_stall_timeout,
        deadline=config.download_timeout,
        connect_timeout=config.request_timeout,
    )


def check_uri(uri: str) -> str:
    """Refuse anything but a plain http(s) URL with a host and no userinfo.

    Raises:
        ApplyRefused: with ``Reason.URI_REFUSED``.
    """
    if not isinstance(uri, str) or any(c.isspace() or ord(c) < 0x20 for c in uri):
        raise ApplyRefused(Reason.URI_REFUSED, "not a URL")
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise ApplyRefused(Reason.URI_REFUSED, "not a URL") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise ApplyRefused(Reason.URI_REFUSED, f"scheme {parts.scheme!r} not allowed")
    if "@" in parts.netloc:
        raise ApplyRefused(Reason.URI_REFUSED, "credentials in the URL")
    try:
        origin(uri)
    except ValueError as exc:
        raise ApplyRefused(Reason.URI_REFUSED, "not a URL with a host") from exc
    return uri


def origin_trusted(url: str, trusted: Iterable[str]) -> bool:
    """Whether ``url`` has the scheme, host and port of one of ``trusted``."""
    try:
        wanted = origin(url)
        return any(wanted == origin(base) for base in trusted)
    except ValueError:
        return False


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


async def _open(
    client: Http,
    url: str,
    limits: DownloadLimits,
    deadline: float,
    credential: str | None,
    extra: dict[str, str] | None = None,
) -> Response:
    first = origin(url)
    headers = {"Accept-Encoding": "identity", **(extra or {})}
    if credential is not None:
        headers["Authorization"] = f"Bearer {credential}"
    for _ in range(_MAX_REDIRECTS + 1):
        # Redirects stay on the first URL's origin (below), so the credential
        # never follows one to another host.
        response = await client.request(
            "GET",
            url,
            headers=headers,
            read_timeout=limits.stall_timeout,
            deadline=deadline,
        )
        location = response.headers.get("location")
        if response.status not in _REDIRECTS or location is None:
            return response
        await response.aclose()
        target = urljoin(url, location)
        try:
            to = origin(target)
        except ValueError:
            to = ("", target[:80], 0)
        if to != first:
            raise ApplyRefused(
                Reason.REDIRECT_REFUSED, f"to {to[0]}://{to[1]}:{to[2] or ''}"
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
    response: Response,
    fd: int,
    limit: int,
    fault: FaultHook,
    progress: _Progress,
) -> None:
    async for chunk in response.chunks():
        if progress.received + len(chunk) > limit:
            raise ApplyRefused(Reason.SIZE_EXCEEDED, f"more than {limit} bytes")
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
        progress.hasher.update(chunk)
        progress.received += len(chunk)
        fault("download:chunk")


def _check_answer(response: Response, progress: _Progress, fd: int) -> None:
    """Accept a 200 (from the start) or the 206 that continues ``progress``."""
    status = response.status
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
    client: Http,
    url: str,
    fd: int,
    *,
    limit: int,
    limits: DownloadLimits,
    deadline: float,
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
        response = await _open(client, url, limits, deadline, credential, extra)
        try:
            _check_answer(response, progress, fd)
            declared = response.headers.get("content-length")
            left = limit - progress.received
            if declared is not None and declared.isdigit() and int(declared) > left:
                raise ApplyRefused(
                    Reason.SIZE_EXCEEDED, f"Content-Length {declared} > {left}"
                )
            await _stream_to(response, fd, limit, fault, progress)
        except ConnectionLost as exc:
            if attempt < _RESUMES and progress.received:
                continue  # the connection dropped mid-body: ask for the rest
            declared = response.headers.get("content-length")
            if isinstance(exc, BodyCut) and declared is not None:
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
    client: Http,
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
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        raise refusal_for_os_error(exc) from exc
    try:
        progress = await _fetch(
            client,
            url,
            fd,
            limit=limit,
            limits=limits,
            deadline=time.monotonic() + limits.deadline,
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
        if isinstance(exc, DeadlineExceeded):
            raise ApplyRefused(Reason.DEADLINE, f"after {limits.deadline}s") from exc
        if isinstance(exc, ReadTimeout):
            raise ApplyRefused(Reason.STALLED, type(exc).__name__) from exc
        if isinstance(exc, HttpError):
            raise ApplyRefused(Reason.HTTP_ERROR, type(exc).__name__) from exc
        if isinstance(exc, OSError):
            raise refusal_for_os_error(exc) from exc
        raise
    finally:
        if fd >= 0:
            os.close(fd)
