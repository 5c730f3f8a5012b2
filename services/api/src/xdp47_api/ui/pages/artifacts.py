"""``/ui/artifacts``: register a release (by URI) and list the catalogue. The form
is validated by the API's own ``ArtifactCreate`` and saved through the REST route
function, so the UI and the API accept exactly the same input."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from xdp47_api.repositories import PgArtifactRepository
from xdp47_api.routes.artifacts import create_artifact
from xdp47_api.state import ServicesDep
from xdp47_api.ui.forms import (
    FieldErrors,
    FormInvalid,
    errors_from_validation,
    field,
    optional_int,
    parse_json_object,
)
from xdp47_api.ui.pages._common import call_api, page_scope
from xdp47_api.ui.session import SessionDep, UiSession, WriteSessionDep
from xdp47_api.ui.templating import render
from xdp47_common.models import ArtifactCreate, Scope

__all__ = ["router"]

router = APIRouter(prefix="/ui/artifacts", include_in_schema=False)

FIELDS = ("uri", "sha256", "type", "version", "size", "signature", "metadata")
LIST_LIMIT = 200


async def _page(
    request: Request,
    session: UiSession,
    services: ServicesDep,
    *,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    created: UUID | None = None,
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
        created=created,
    )


@router.get("")
async def artifacts_page(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    created: Annotated[UUID | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    page_scope(session, Scope.ARTIFACTS_READ)
    return await _page(request, session, services, created=created, cursor=cursor)


def _body(session: UiSession, values: dict[str, str]) -> ArtifactCreate:
    errors: FieldErrors = {}
    fields: dict[str, Any] = {"tenant": session.tenant}
    for name in ("uri", "sha256", "type", "version", "signature"):
        if values[name]:
            fields[name] = values[name]
    for name in ("uri", "sha256"):
        if not values[name]:
            errors[name] = "required"
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
