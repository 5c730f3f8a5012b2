"""``POST /api/artifacts/upload``: upload an artifact's bytes.

It takes the raw bytes as the request body (``application/octet-stream``) and the
artifact's fields as query parameters. The body streams into the blob store while
its SHA256 and size are computed; it has its own limit (``XDP47_MAX_UPLOAD_BYTES``)
instead of the general body limit. The new artifact's ``uri`` is this service's
download URL for it (``routes.artifact_download``), under ``XDP47_PUBLIC_URL`` (or
the URL the upload request came in on). The steps live in
``usecases.artifact_uploads``, shared with the web UI's multipart upload form.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import ValidationError

from xdp47_api.auth import Principal, require
from xdp47_api.blobs import BlobTooLarge
from xdp47_api.links import download_url
from xdp47_api.routes._responses import errors
from xdp47_api.state import ServicesDep
from xdp47_api.usecases.artifact_uploads import (
    check_upload,
    create_uploaded,
    query_metadata,
    store_upload,
    too_large,
    unprocessable_query,
    upload_fields,
)
from xdp47_common.models import Artifact, Scope
from xdp47_common.models.base import NUL_FREE_PATTERN, TENANT_ID_PATTERN

__all__ = ["OCTETS", "UPLOAD_PATH", "router"]

router = APIRouter(prefix="/api/artifacts", tags=["artifacts"])
UPLOAD_PATH = "/api/artifacts/upload"
OCTETS = "application/octet-stream"

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The bytes, streamed; at most XDP47_MAX_UPLOAD_BYTES.",
        "content": {OCTETS: {"schema": {"type": "string", "format": "binary"}}},
    }
}


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
        metadata=query_metadata(metadata, filename),
        compatible=compatible,
    )
    try:
        check_upload(principal, fields)
    except ValidationError as exc:
        raise unprocessable_query(exc) from None
    media = request.headers.get("content-type", OCTETS).split(";")[0].strip()
    if media.lower() != OCTETS:
        raise HTTPException(
            status_code=415,
            detail=f"content-type: send the raw bytes as {OCTETS}, not {media!r}",
        )
    try:
        blob = await store_upload(services, request.stream())
    except BlobTooLarge as exc:
        raise HTTPException(status_code=413, detail=too_large(exc.limit)) from None
    try:
        return await create_uploaded(services, fields, blob, download_url(request))
    except ValidationError as exc:
        raise unprocessable_query(exc) from None
