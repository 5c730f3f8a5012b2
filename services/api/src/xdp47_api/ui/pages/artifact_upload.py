"""``/ui/artifacts/upload``: upload a release through the web UI's multipart form.

It goes through the steps of the REST upload (``usecases.artifact_uploads``:
``check_upload``, ``store_upload``, ``create_uploaded``), so the UI and the API
accept exactly the same input. The form is read as it streams in
(``MultipartStream``): the text fields and the CSRF token come first (the file
input is the form's last field), so bad fields or a missing token are refused
before any byte is stored, and the file's bytes go straight into the blob store,
cut off past ``max_upload_bytes``."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from xdp47_api.blobs import BlobTooLarge
from xdp47_api.links import download_url
from xdp47_api.state import Services, ServicesDep
from xdp47_api.ui.forms import (
    FieldErrors,
    FormInvalid,
    errors_from_validation,
    parse_json_object,
)
from xdp47_api.ui.multipart import FilePart, MultipartInvalid, MultipartStream
from xdp47_api.ui.pages.artifacts import artifacts_view, bytes_text
from xdp47_api.ui.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    SessionDep,
    UiError,
    UiSession,
)
from xdp47_api.usecases.artifact_uploads import (
    check_upload,
    client_filename,
    create_uploaded,
    store_upload,
    upload_fields,
)
from xdp47_common.models import Scope

__all__ = ["UPLOAD_FORM_OVERHEAD", "UPLOAD_PATH", "router"]

router = APIRouter(prefix="/ui/artifacts", include_in_schema=False)

UPLOAD_FIELDS = ("type", "version", "signature", "metadata", "compatible")
FILE_FIELD = "file"
UPLOAD_PATH = "/ui/artifacts/upload"
# The text fields of the upload form: a few, each bounded (metadata, the largest,
# is at most 16 KiB for the API too) and bounded together.
_MAX_PARTS = 12
_MAX_FIELD_BYTES = 16 << 10
_MAX_TEXT_BYTES = 48 << 10
# How much larger than max_upload_bytes the upload form's body may be (its text
# fields and the multipart framing): the body limit of UPLOAD_PATH (see app.py), so
# an oversized file reaches this handler's own limit, and its form, first.
UPLOAD_FORM_OVERHEAD = 64 << 10


def _check_csrf(presented: str | None, session: UiSession) -> None:
    """403 unless the token was echoed: ``session.check_csrf`` without its
    ``request.form()``, which would spool the file."""
    if not presented or not hmac.compare_digest(presented, session.csrf_token):
        raise UiError(
            403,
            "the form's CSRF token is missing or stale; reload the page and try again",
        )


async def _read_fields(
    form: MultipartStream, values: dict[str, str]
) -> tuple[str | None, FilePart | None]:
    """Read the text fields before the file into ``values``; return the CSRF
    field and the file part (``None`` when the form has none)."""
    csrf = None
    while (part := await form.next_part()) is not None:
        if isinstance(part, FilePart):
            return csrf, part
        if part.name == CSRF_FIELD:
            csrf = part.value
        elif part.name in UPLOAD_FIELDS:
            values[part.name] = part.value.strip()
    return csrf, None


def _upload_body(
    session: UiSession, values: dict[str, str], file: FilePart | None
) -> dict[str, Any]:
    """The upload's artifact fields, checked as the REST route checks them;
    ``FormInvalid`` with every bad field, the file included."""
    errors: FieldErrors = {}
    if file is None or file.name != FILE_FIELD or not file.filename:
        errors[FILE_FIELD] = "choose a file to upload"
    try:
        metadata = parse_json_object(values.get("metadata", ""))
    except ValueError as exc:
        errors["metadata"] = str(exc)
        metadata = {}
    filename = client_filename(file.filename) if file else None
    if filename is not None:  # as the REST route's filename parameter does
        metadata["filename"] = filename
    fields = upload_fields(
        tenant=session.tenant,
        version=values.get("version") or None,
        type=values.get("type") or None,
        signature=values.get("signature") or None,
        metadata=metadata,
        compatible=values.get("compatible") or None,
    )
    try:
        check_upload(session.principal, fields)
    except ValidationError as exc:
        errors = {**errors_from_validation(exc), **errors}
    except HTTPException as exc:
        raise UiError(exc.status_code, str(exc.detail)) from exc
    if errors:
        raise FormInvalid(errors)
    return fields


async def _chained(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


async def _store(
    request: Request, services: Services, form: MultipartStream, fields: dict[str, Any]
) -> UUID:
    """Stream the file part into the blob store and save the artifact.

    Raises ``FormInvalid`` for an empty file or a form that goes on after the
    file, ``BlobTooLarge`` past the upload limit (nothing is stored then).
    """
    chunks = form.file_chunks()
    first = await anext(chunks, None)
    if first is None:
        raise FormInvalid({FILE_FIELD: "the file is empty"})
    blob = await store_upload(services, _chained(first, chunks))
    if await form.next_part() is not None:
        raise FormInvalid({"form": "the file must be the form's last field"})
    try:
        artifact = await create_uploaded(services, fields, blob, download_url(request))
    except ValidationError as exc:
        raise FormInvalid(errors_from_validation(exc)) from None
    return artifact.id


@router.post("/upload")
async def upload(
    request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    """The upload form (multipart). The CSRF token is checked when the file part
    begins (or at the end of a form without one), before any byte is kept."""
    session.require(Scope.ARTIFACTS_WRITE)
    values: dict[str, str] = {}
    header = request.headers.get(CSRF_HEADER)
    status = 422
    try:
        form = MultipartStream(
            request.headers.get("content-type", ""),
            request.stream(),
            max_parts=_MAX_PARTS,
            max_field_bytes=_MAX_FIELD_BYTES,
            max_text_bytes=_MAX_TEXT_BYTES,
        )
        csrf, file = await _read_fields(form, values)
    except MultipartInvalid as exc:
        _check_csrf(header, session)
        errors: FieldErrors = {"form": exc.message}
    else:
        _check_csrf(header or csrf, session)
        try:
            fields = _upload_body(session, values, file)
            created = await _store(request, services, form, fields)
        except FormInvalid as exc:
            errors = exc.errors
        except MultipartInvalid as exc:
            errors = {"form": exc.message}
        except BlobTooLarge as exc:
            status = 413
            errors = {
                FILE_FIELD: f"the file is larger than the limit of "
                f"{bytes_text(exc.limit)} ({exc.limit} bytes)"
            }
        else:
            return RedirectResponse(f"/ui/artifacts?created={created}", status_code=303)
    return await artifacts_view(
        request,
        session,
        services,
        upload_values=values,
        upload_errors=errors,
        status=status,
    )
