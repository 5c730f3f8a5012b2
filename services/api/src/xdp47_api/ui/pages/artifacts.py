"""``/ui/artifacts``: upload a release or register one by URI, and list the
catalogue. The URI form is validated by the API's own ``ArtifactCreate`` and saved
through the REST route function; the upload form goes through the steps of the
REST upload route (``check_upload``, ``store_upload``, ``create_uploaded``), so the
UI and the API accept exactly the same input.

The upload form is read as it streams in (``MultipartStream``): the text fields
and the CSRF token come first (the file input is the form's last field), so bad
fields or a missing token are refused before any byte is stored, and the file's
bytes go straight into the blob store, cut off past ``max_upload_bytes``."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from xdp47_api.blobs import BlobTooLarge
from xdp47_api.repositories import PgArtifactRepository
from xdp47_api.routes.artifact_content import (
    check_upload,
    client_filename,
    create_uploaded,
    store_upload,
    upload_fields,
)
from xdp47_api.routes.artifacts import create_artifact
from xdp47_api.state import Services, ServicesDep
from xdp47_api.ui.forms import (
    FieldErrors,
    FormInvalid,
    errors_from_validation,
    field,
    optional_int,
    parse_json_object,
)
from xdp47_api.ui.messages import human_message
from xdp47_api.ui.multipart import FilePart, MultipartInvalid, MultipartStream
from xdp47_api.ui.pages._common import call_api, page_scope
from xdp47_api.ui.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    SessionDep,
    UiError,
    UiSession,
    WriteSessionDep,
)
from xdp47_api.ui.templating import render
from xdp47_common.models import ArtifactCreate, Scope

__all__ = ["UPLOAD_FORM_OVERHEAD", "UPLOAD_PATH", "router"]

router = APIRouter(prefix="/ui/artifacts", include_in_schema=False)

FIELDS = (
    "uri",
    "sha256",
    "type",
    "version",
    "size",
    "signature",
    "metadata",
    "compatible",
)
UPLOAD_FIELDS = ("type", "version", "signature", "metadata", "compatible")
FILE_FIELD = "file"
LIST_LIMIT = 200
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


async def _page(
    request: Request,
    session: UiSession,
    services: ServicesDep,
    *,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    upload_values: dict[str, str] | None = None,
    upload_errors: FieldErrors | None = None,
    created: UUID | None = None,
    deleted: UUID | None = None,
    cursor: str | None = None,
    status: int = 200,
) -> Response:
    page = await call_api(
        PgArtifactRepository(services.pool).list(
            session.tenant, version=None, type_=None, limit=LIST_LIMIT, cursor=cursor
        )
    )
    return render(
        request,
        "artifacts.html",
        session,
        status=status,
        artifacts=page.items,
        next_cursor=page.next_cursor,
        values=values or {"type": "application"},
        errors=errors or {},
        upload_values=upload_values or {"type": "application"},
        upload_errors=upload_errors or {},
        upload_limit=services.settings.max_upload_bytes,
        upload_limit_text=_bytes_text(services.settings.max_upload_bytes),
        created=created,
        deleted=deleted,
    )


@router.get("")
async def artifacts_page(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    created: Annotated[UUID | None, Query()] = None,
    deleted: Annotated[UUID | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    page_scope(session, Scope.ARTIFACTS_READ)
    return await _page(
        request, session, services, created=created, deleted=deleted, cursor=cursor
    )


def _body(session: UiSession, values: dict[str, str]) -> ArtifactCreate:
    errors: FieldErrors = {}
    fields: dict[str, Any] = {"tenant": session.tenant}
    for name in ("uri", "sha256", "type", "version", "signature", "compatible"):
        if values[name]:
            fields[name] = values[name]
    for name in ("uri", "sha256"):
        if not values[name]:
            errors[name] = human_message({"type": "missing"}, name)
    size = optional_int(values["size"], "size", errors)
    if size is not None:
        fields["size"] = size
    try:
        fields["metadata"] = parse_json_object(values["metadata"])
    except ValueError as exc:
        errors["metadata"] = str(exc)
    try:
        body = ArtifactCreate.model_validate(fields)
    except ValidationError as exc:
        raise FormInvalid({**errors_from_validation(exc), **errors}) from None
    if errors:
        raise FormInvalid(errors)
    return body


@router.post("")
async def create(
    request: Request, session: WriteSessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.ARTIFACTS_WRITE)
    form = await request.form()
    values = {name: field(form, name) for name in FIELDS}
    try:
        body = _body(session, values)
    except FormInvalid as exc:
        return await _page(
            request, session, services, values=values, errors=exc.errors, status=422
        )
    artifact = await call_api(create_artifact(body, session.principal, services))
    return RedirectResponse(f"/ui/artifacts?created={artifact.id}", status_code=303)


def _bytes_text(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


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
        artifact = await create_uploaded(request, services, fields, blob)
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
                f"{_bytes_text(exc.limit)} ({exc.limit} bytes)"
            }
        else:
            return RedirectResponse(f"/ui/artifacts?created={created}", status_code=303)
    return await _page(
        request,
        session,
        services,
        upload_values=values,
        upload_errors=errors,
        status=status,
    )
