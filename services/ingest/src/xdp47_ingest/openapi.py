"""The device endpoints in ingest's OpenAPI document, generated from the models.

``DeviceRoutes`` serves them in front of FastAPI (plain ASGI, for speed), so
FastAPI never sees them. Here they are declared the FastAPI way (the path
parameter, ``HeartbeatBody``, the ``DesiredState`` answer, the device credential
and the error answers as ``ErrorBody``) on a router that is documented but never
mounted: the document is FastAPI's own generation from those declarations and
models, and schema-driven clients and tests (schemathesis) see both operations.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Security
from fastapi.openapi.utils import get_openapi

from xdp47_common.messages import DesiredState, HeartbeatBody
from xdp47_common.models.base import DEVICE_ID_PATTERN
from xdp47_common.web import ErrorBody
from xdp47_common.web.device_auth import DEVICE_BEARER
from xdp47_ingest.device_routes import DESIRED, HEARTBEAT

__all__ = ["install_openapi"]

DeviceId = Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        401: "missing, malformed or unknown",
        403: "the credential is another device's",
        413: "body over XDP47_MAX_BODY_BYTES",
        422: "invalid body; names the field",
        429: "over the device rate; Retry-After",
        503: "broker or database down; Retry-After",
    }.items()
}

# Documented, never mounted: ``DeviceRoutes`` answers these paths first.
_DOCUMENTED = APIRouter(dependencies=[Security(DEVICE_BEARER)], responses=_ERRORS)


@_DOCUMENTED.post(
    HEARTBEAT.path,
    status_code=202,
    summary="Report the device's whole state; answers its desired state",
)
def heartbeat(device_id: DeviceId, body: HeartbeatBody) -> DesiredState:
    """Answered (202) once the broker confirmed the heartbeat; the answer is the
    device's desired state, stamped with the server's time."""
    # The declaration is the document; ``DeviceRoutes.heartbeat`` serves it.
    raise NotImplementedError(device_id)  # pragma: no cover (never mounted)


@_DOCUMENTED.get(
    DESIRED.path,
    summary="The device's desired state, with a strong ETag",
    responses={304: {"description": "unchanged (If-None-Match)"}},
)
def desired(device_id: DeviceId) -> DesiredState:
    """A strong ``ETag`` comes with it; ``If-None-Match`` naming it answers 304."""
    # The declaration is the document; ``DeviceRoutes.desired`` serves it.
    raise NotImplementedError(device_id)  # pragma: no cover (never mounted)


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe the device endpoints beside the app's own
    routes (generated once, then cached like FastAPI's)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=[*app.routes, *_DOCUMENTED.routes],
                tags=app.openapi_tags,
                servers=app.servers,
                separate_input_output_schemas=app.separate_input_output_schemas,
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
