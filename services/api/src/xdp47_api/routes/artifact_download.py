"""``GET /api/artifacts/{id}/content``: serve an uploaded artifact's bytes.

To the tenant's devices (their ``xdp47d_`` credential) and to tokens with
``artifacts:read``, with single byte ranges (206/416), ``ETag`` = the quoted
SHA256, ``If-None-Match`` and ``If-Range``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from xdp47_api.device_access import require_device_or
from xdp47_api.ranges import RangeNotSatisfiable, byte_range, content_range
from xdp47_api.routes._responses import errors
from xdp47_api.routes.artifact_content import OCTETS
from xdp47_api.state import ServicesDep
from xdp47_api.usecases import artifacts
from xdp47_api.usecases.artifact_uploads import FILENAME
from xdp47_common.models import Scope

__all__ = ["router"]

router = APIRouter(prefix="/api/artifacts", tags=["artifacts"])

_CONTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {OCTETS: {}}, "description": "The whole content"},
    206: {"content": {OCTETS: {}}, "description": "The requested byte range"},
    304: {"description": "If-None-Match matched the ETag"},
}


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
    artifact, size = await artifacts.get_stored(services, tenant, artifact_id)
    etag = f'"{artifact.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-transform",
    }
    filename = artifact.metadata.get("filename")
    if isinstance(filename, str) and FILENAME.match(filename):
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
        body, status_code=status, headers=headers, media_type=OCTETS
    )
