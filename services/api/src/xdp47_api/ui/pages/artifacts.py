"""``/ui/artifacts``: the catalogue, and registering a release by URI. The URI
form is validated by the API's own ``ArtifactCreate`` and saved through the use
case ``POST /api/artifacts`` calls (``usecases.artifacts.create``), so the UI and
the API accept exactly the same input. The upload form is ``artifact_upload``."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from xdp47_api.state import ServicesDep
from xdp47_api.ui.forms import (
    FieldErrors,
    FormInvalid,
    errors_from_validation,
    field,
    optional_int,
    parse_json_object,
)
from xdp47_api.ui.messages import human_message
from xdp47_api.ui.pages._common import call_api, page_scope
from xdp47_api.ui.session import SessionDep, UiSession, WriteSessionDep
from xdp47_api.ui.templating import render
from xdp47_api.usecases import artifacts
from xdp47_common.models import ArtifactCreate, Scope

__all__ = ["artifacts_view", "bytes_text", "router"]

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
LIST_LIMIT = 200


async def artifacts_view(
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
        artifacts.list_page(services, session.tenant, limit=LIST_LIMIT, cursor=cursor)
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
        upload_limit_text=bytes_text(services.settings.max_upload_bytes),
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
    return await artifacts_view(
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
        return await artifacts_view(
            request, session, services, values=values, errors=exc.errors, status=422
        )
    artifact = await call_api(artifacts.create(services, session.principal, body))
    return RedirectResponse(f"/ui/artifacts?created={artifact.id}", status_code=303)


def bytes_text(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"
