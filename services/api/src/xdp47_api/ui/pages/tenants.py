"""``/ui/tenants``: the tenants the token may see, the tenant's API tokens with
their scopes, minting a token (its secret is shown once, on the answer to the
POST, never stored) and revoking one after a confirmation. Reads and writes call
the use cases the REST routes call (``usecases.tenants``, ``usecases.tokens``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from xdp47_api.state import ServicesDep
from xdp47_api.ui.forms import FieldErrors, errors_from_validation, field
from xdp47_api.ui.pages._common import call_api, page_scope
from xdp47_api.ui.session import SessionDep, UiError, UiSession, WriteSessionDep
from xdp47_api.ui.templating import render
from xdp47_api.usecases import tenants as tenant_cases
from xdp47_api.usecases import tokens as token_cases
from xdp47_common.models import ApiTokenCreate, ApiTokenCreated, Scope, TenantSettings

__all__ = ["router"]

router = APIRouter(prefix="/ui/tenants", include_in_schema=False)

LIST_LIMIT = 500


async def _page(
    request: Request,
    session: UiSession,
    services: ServicesDep,
    *,
    values: dict[str, Any] | None = None,
    errors: FieldErrors | None = None,
    minted: ApiTokenCreated | None = None,
    status: int = 200,
) -> Response:
    tenants = (
        await tenant_cases.visible(
            services, session.principal, limit=LIST_LIMIT, cursor=None
        )
    ).items
    tokens = []
    if session.can(Scope.TOKENS_READ):
        tokens = (
            await token_cases.list_page(
                services, session.tenant, limit=LIST_LIMIT, cursor=None
            )
        ).items
    return render(
        request,
        "tenants.html",
        session,
        status=status,
        tenants=tenants,
        tokens=tokens,
        # Only scopes this token holds can be minted; others are not offered.
        mintable=[s for s in Scope if session.can(s)],
        values=values or {"expires_in_days": "90", "scopes": []},
        errors=errors or {},
        minted=minted,
    )


@router.get("")
async def tenants_page(
    request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    page_scope(session, Scope.TENANTS_READ)
    return await _page(request, session, services)


@router.post("/tokens")
async def mint(
    request: Request, session: WriteSessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.TOKENS_WRITE)
    form = await request.form()
    scopes = [s for s in form.getlist("scopes") if isinstance(s, str)]
    values: dict[str, Any] = {
        "name": field(form, "name"),
        "expires_in_days": field(form, "expires_in_days"),
        "scopes": scopes,
    }
    fields: dict[str, Any] = {"name": values["name"], "scopes": scopes}
    fields["expires_in_days"] = values["expires_in_days"] or None
    try:
        body = ApiTokenCreate.model_validate(fields)
    except ValidationError as exc:
        return await _page(
            request,
            session,
            services,
            values=values,
            errors=errors_from_validation(exc),
            status=422,
        )
    minted = await call_api(token_cases.mint(services, session.principal, body))
    # Rendered, not redirected: the secret must not travel in a URL, and this
    # answer (Cache-Control: no-store) is the only place it ever appears.
    return await _page(request, session, services, minted=minted, status=201)


@router.get("/tokens/{token_id}/revoke")
async def revoke_dialog(
    token_id: UUID, request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    """The confirmation before a revoke, with a warning when the token is the one
    this session signed in with."""
    session.require(Scope.TOKENS_WRITE)
    token = await call_api(token_cases.get(services, session.tenant, token_id))
    own = token.id == session.principal.token_id
    return render(request, "_revoke_dialog.html", session, t=token, own=own)


@router.post("/tokens/{token_id}/revoke")
async def revoke(
    token_id: UUID, session: WriteSessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.TOKENS_WRITE)
    await call_api(token_cases.revoke(services, session.tenant, token_id))
    return RedirectResponse("/ui/tenants", status_code=303)


@router.post("/{tenant_id}/settings")
async def settings(
    tenant_id: str, request: Request, session: WriteSessionDep, services: ServicesDep
) -> Response:
    """A platform operator turns a tenant's four-eyes approval on or off."""
    session.require(Scope.TENANTS_WRITE)
    form = await request.form()
    value = field(form, "four_eyes_approval")
    if value not in ("true", "false"):
        raise UiError(422, "four_eyes_approval must be true or false")
    body = TenantSettings(four_eyes_approval=value == "true")
    await call_api(tenant_cases.update_settings(services, tenant_id, body))
    return RedirectResponse("/ui/tenants", status_code=303)
