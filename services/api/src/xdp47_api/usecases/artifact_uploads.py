"""Uploading an artifact's bytes: the steps both upload surfaces share.

The REST upload (``POST /api/artifacts/upload``, raw bytes) and the web UI's
multipart form go through the same steps, so they accept exactly the same input:
``upload_fields`` gathers the artifact's fields, ``check_upload`` refuses bad ones
(or another tenant) before any byte is stored, ``store_upload`` streams the bytes
into the blob store under ``XDP47_MAX_UPLOAD_BYTES`` while their SHA256 and size
are computed, and ``create_uploaded`` records the artifact, whose ``uri`` is this
service's download URL for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, Callable, Mapping
from typing import Any
from uuid import UUID, uuid4

from fastapi import HTTPException
from pydantic import ValidationError

from xdp47_api.auth import Principal
from xdp47_api.blobs import BlobInfo
from xdp47_api.state import Services
from xdp47_api.usecases.errors import conflict
from xdp47_common.models import Artifact, ArtifactCreate
from xdp47_common.web import format_validation_errors

__all__ = [
    "FILENAME",
    "check_upload",
    "client_filename",
    "create_uploaded",
    "query_metadata",
    "store_upload",
    "too_large",
    "unprocessable_query",
    "upload_fields",
]

FILENAME = re.compile(r"^[A-Za-z0-9._+-][A-Za-z0-9 ._+-]{0,254}$")
# Stands in for the fields only known after the upload while the query
# parameters are validated by the same model as a registration.
_PLACEHOLDER = {"uri": "http://placeholder.invalid/", "sha256": "0" * 64}


def _invalid(field: str, message: str) -> HTTPException:
    return HTTPException(status_code=422, detail=f"query.{field}: {message}")


def query_metadata(raw: str | None, filename: str | None) -> dict[str, Any]:
    """The ``metadata`` of a REST upload: its JSON object, with ``filename``.

    Raises ``HTTPException`` 422 naming the query parameter that is wrong.
    """
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
        if not FILENAME.match(filename) or filename in (".", ".."):
            raise _invalid(
                "filename",
                "letters, digits, space and ._+- only, at most 255, no path",
            )
        data["filename"] = filename
    return data


def unprocessable_query(exc: ValidationError) -> HTTPException:
    """The 422 of upload fields (query parameters) the model refused."""
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
    if not FILENAME.match(cleaned) or cleaned in (".", ".."):
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
    services: Services,
    fields: Mapping[str, Any],
    blob: BlobInfo,
    download_url: Callable[[UUID], str],
) -> Artifact:
    """Save the artifact of stored bytes; its ``uri`` is this service's download
    URL (under ``XDP47_PUBLIC_URL``, else ``download_url`` of the new id).

    Raises ``ValidationError`` when the fields (checked by ``check_upload``
    before the bytes) do not make an artifact after all, ``HTTPException`` 409
    when a concurrent deletion removed the bytes meanwhile.
    """
    artifact_id = uuid4()
    base = services.settings.public_url
    uri = (
        f"{base.rstrip('/')}/api/artifacts/{artifact_id}/content"
        if base
        else download_url(artifact_id)
    )
    body = ArtifactCreate.model_validate(
        {**fields, "uri": uri, "sha256": blob.sha256, "size": blob.size}
    )
    created = await services.repos.record_upload(services.blobs, body, artifact_id)
    if created is None:
        raise conflict(
            "the uploaded bytes were removed by a concurrent deletion "
            "of an artifact with the same content; upload again"
        )
    return created
