"""Artifact content held by the control plane: upload the bytes, serve them.

``POST /api/artifacts/upload`` takes the raw bytes as the request body
(``application/octet-stream``) and the artifact's fields as query parameters. The
body streams into the blob store while its SHA256 and size are computed; it has its
own limit (``XDP47_MAX_UPLOAD_BYTES``) instead of the general body limit. The new
artifact's ``uri`` is this service's download URL for it, under
``XDP47_PUBLIC_URL`` (or the URL the upload request came in on). The steps of an
upload (``check_upload``, ``store_upload``, ``create_uploaded``) are public so the
web UI's multipart upload form goes through the same code.

``GET /api/artifacts/{id}/content`` serves the bytes to the tenant's devices (their
``xdp47d_`` credential) and to tokens with ``artifacts:read``, with single byte
ranges (206/416), ``ETag`` = the quoted SHA256, ``If-None-Match`` and ``If-Range``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from xdp47_api.artifact_deletion import blob_lock
from xdp47_api.auth import Principal, require
from xdp47_api.blobs import BlobInfo, BlobTooLarge
from xdp47_api.device_access import require_device_or
from xdp47_api.ranges import RangeNotSatisfiable, byte_range, content_range
from xdp47_api.repositories import PgArtifactRepository
from xdp47_api.routes._responses import errors, not_found
from xdp47_api.state import Services, ServicesDep
from xdp47_common.models import Artifact, ArtifactCreate, Scope
from xdp47_common.models.base import NUL_FREE_PATTERN, TENANT_ID_PATTERN
from xdp47_common.web import format_validation_errors

__all__ = [
    "UPLOAD_PATH",
    "check_upload",
    "client_filename",
    "create_uploaded",
    "router",
    "store_upload",
    "too_large",
    "upload_fields",
]

router = APIRouter(prefix="/api/artifacts", tags=["artifacts"])
UPLOAD_PATH = "/api/artifacts/upload"
_OCTETS = "application/octet-stream"
_FILENAME = re.compile(r"^[A-Za-z0-9._+-][A-Za-z0-9 ._+-]{0,254}$")
# Stands in for the fields only known after the upload while the query
# parameters are validated by the same model as a registration.
_PLACEHOLDER = {"uri": "http://placeholder.invalid/", "sha256": "0" * 64}

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The bytes, streamed; at most XDP47_MAX_UPLOAD_BYTES.",
        "content": {_OCTETS: {"schema": {"type": "string", "format": "binary"}}},
    }
}
_CONTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {_OCTETS: {}}, "description": "The whole content"},
    206: {"content": {_OCTETS: {}}, "description": "The requested byte range"},
    304: {"description": "If-None-Match matched the ETag"},
}


def _invalid(field: str, message: str) -> HTTPException:
    return HTTPException(status_code=422, detail=f"query.{field}: {message}")


def _metadata(raw: str | None, filename: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if raw is not None:
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise _invalid("metadata", "not valid JSON") from None
        if not isinstance(parsed, dict):
            raise _invalid("metadata", "must be a JSON object")
        data = parsed
    if filename is not None:
        if not _FILENAME.match(filename) or filename in (".", ".."):
            raise _invalid(
                "filename",
                "letters, digits, space and ._+- only, at most 255, no path",
            )
        data["filename"] = filename
    return data


def _unprocessable(exc: ValidationError) -> HTTPException:
    detail, _ = format_validation_errors(
        [{**e, "loc": ("query", *e["loc"])} for e in exc.errors()]
    )
    return HTTPException(status_code=422, detail=detail)


def client_filename(name: str | None) -> str | None:
    """The name a browser sent for a file, made fit for ``metadata.filename``.

    Path parts are dropped and characters the download's ``Content-Disposition``
    would not carry become ``_``; ``None`` when nothing usable is left.
    """
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9 ._+-]", "_", base).lstrip(" ")[:255]
    if not _FILENAME.match(cleaned) or cleaned in (".", ".."):
        return None
    return cleaned


def upload_fields(
    *,
    tenant: str,
    version: str | None,
    type: str | None,
    signature: str | None,
    metadata: dict[str, Any],
    compatible: str | None = None,
) -> dict[str, Any]:
    """The artifact fields of an upload: everything but what its bytes decide."""
    fields: dict[str, Any] = {
        "tenant": tenant,
        "version": version,
        "signature": signature,
        "metadata": metadata,
    }
    if compatible:
        fields["compatible"] = compatible
    if type is not None:
        fields["type"] = type
    return fields


def check_upload(principal: Principal, fields: Mapping[str, Any]) -> None:
    """Refuse bad fields, or another tenant, before any byte is stored.

    Raises ``ValidationError`` (the fields, as ``ArtifactCreate`` judges them) or
    ``HTTPException`` 404 (a tenant not the caller's).
    """
    ArtifactCreate.model_validate({**fields, **_PLACEHOLDER})
    principal.own_tenant(str(fields["tenant"]))


async def store_upload(services: Services, chunks: AsyncIterable[bytes]) -> BlobInfo:
    """Stream ``chunks`` into the blob store, at most ``max_upload_bytes``.

    Raises ``BlobTooLarge`` past the limit; nothing is stored then.
    """
    limit = services.settings.max_upload_bytes
    return await services.blobs.put(chunks, max_bytes=limit)


def too_large(limit: int) -> str:
    return f"upload larger than the limit of {limit} bytes"


async def create_uploaded(
    request: Request, services: Services, fields: Mapping[str, Any], blob: BlobInfo
) -> Artifact:
    """Save the artifact of stored bytes; its ``uri`` is this service's download
    URL. Raises ``ValidationError`` when the fields (checked by ``check_upload``
    before the bytes) do not make an artifact after all."""
    artifact_id = uuid4()
    base = services.settings.public_url
    uri = (
        f"{base.rstrip('/')}/api/artifacts/{artifact_id}/content"
        if base
        else str(request.url_for("download_artifact", artifact_id=artifact_id))
    )
    body = ArtifactCreate.model_validate(
        {**fields, "uri": uri, "sha256": blob.sha256, "size": blob.size}
    )
    # Under the digest's lock: a deletion of another artifact with these bytes
    # either sees this row (and keeps them) or has removed them already.
    async with services.pool.acquire() as conn, blob_lock(conn, blob.sha256):
        if await services.blobs.size(blob.sha256) is None:
            raise HTTPException(
                status_code=409,
                detail="the uploaded bytes were removed by a concurrent deletion "
                "of an artifact with the same content; upload again",
            )
        return await PgArtifactRepository(conn).create(
            body, artifact_id=artifact_id, content_stored=True
        )


@router.post(
    "/upload",
    response_model=Artifact,
    status_code=201,
    summary="Upload an artifact's bytes; the control plane serves them",
    description="Scope artifacts:write. Body: the raw bytes "
    "(Content-Type application/octet-stream). Query: tenant (required), version, "
    "type, signature, filename, metadata (a JSON object), compatible (what it "
    "runs on: a JSON object or 'arch=arm64,device_type in (k2,k3)'). The SHA256 "
    "and size are "
    "computed from the body; uri is this service's download URL.",
    responses=errors(404, 409, 413, 415),
    openapi_extra=_UPLOAD_BODY,
)
async def upload_artifact(
    request: Request,
    principal: Annotated[Principal, require(Scope.ARTIFACTS_WRITE)],
    services: ServicesDep,
    tenant: Annotated[str, Query(max_length=63, pattern=TENANT_ID_PATTERN)],
    version: Annotated[
        str | None, Query(max_length=128, pattern=NUL_FREE_PATTERN)
    ] = None,
    type: Annotated[str | None, Query(max_length=64, pattern=NUL_FREE_PATTERN)] = None,
    signature: Annotated[
        str | None, Query(max_length=512, pattern=NUL_FREE_PATTERN)
    ] = None,
    filename: Annotated[
        str | None, Query(max_length=255, pattern=NUL_FREE_PATTERN)
    ] = None,
    metadata: Annotated[
        str | None, Query(max_length=16_384, pattern=NUL_FREE_PATTERN)
    ] = None,
    compatible: Annotated[
        str | None, Query(max_length=4_096, pattern=NUL_FREE_PATTERN)
    ] = None,
) -> Artifact:
    fields = upload_fields(
        tenant=tenant,
        version=version,
        type=type,
        signature=signature,
        metadata=_metadata(metadata, filename),
        compatible=compatible,
    )
    try:
        check_upload(principal, fields)
    except ValidationError as exc:
        raise _unprocessable(exc) from None
    media = request.headers.get("content-type", _OCTETS).split(";")[0].strip()
    if media.lower() != _OCTETS:
        raise HTTPException(
            status_code=415,
            detail=f"content-type: send the raw bytes as {_OCTETS}, not {media!r}",
        )
    try:
        blob = await store_upload(services, request.stream())
    except BlobTooLarge as exc:
        raise HTTPException(status_code=413, detail=too_large(exc.limit)) from None
    try:
        return await create_uploaded(request, services, fields, blob)
    except ValidationError as exc:
        raise _unprocessable(exc) from None


def _etag_listed(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


@router.get(
    "/{artifact_id}/content",
    name="download_artifact",
    summary="Download an uploaded artifact's bytes (Range supported)",
    description="A device credential of the artifact's tenant, or a token with "
    "artifacts:read. Single byte ranges: 206 with Content-Range; 416 when "
    "unsatisfiable. ETag is the quoted SHA256.",
    response_class=Response,
    responses={**errors(404, 416), **_CONTENT_RESPONSES},
)
async def download_artifact(
    request: Request,
    artifact_id: UUID,
    tenant: Annotated[str, require_device_or(Scope.ARTIFACTS_READ)],
    services: ServicesDep,
) -> Response:
    artifact = await PgArtifactRepository(services.pool).get_stored(tenant, artifact_id)
    size = None if artifact is None else await services.blobs.size(artifact.sha256)
    if artifact is None or size is None:
        raise not_found("artifact content", artifact_id)
    etag = f'"{artifact.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-transform",
    }
    filename = artifact.metadata.get("filename")
    if isinstance(filename, str) and _FILENAME.match(filename):
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    if _etag_listed(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        wanted = None  # the client's copy is another version: send it whole
    try:
        interval = byte_range(wanted, size)
    except RangeNotSatisfiable:
        return Response(
            status_code=416,
            content=json.dumps({"detail": f"range not satisfiable: {size} bytes"}),
            media_type="application/json",
            headers={**headers, "Content-Range": content_range(None, size)},
        )
    start, end = interval or (0, size)
    headers["Content-Length"] = str(end - start)
    status = 200
    if interval is not None:
        status = 206
        headers["Content-Range"] = content_range(interval, size)
    body: AsyncIterator[bytes] = services.blobs.read(artifact.sha256, start, end)
    return StreamingResponse(
        body, status_code=status, headers=headers, media_type=_OCTETS
    )
