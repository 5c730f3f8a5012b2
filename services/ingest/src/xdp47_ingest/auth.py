"""Device authentication: the bearer credential and the device it belongs to.

A malformed credential (wrong prefix, length, alphabet or checksum) is refused with
401 before any database access. A well-formed one is looked up by its SHA256 in the
same indexed read that fetches the desired state (see ``desired.py``).
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from xdp47_common.tokens import SecretKind, looks_valid

__all__ = ["bearer_credential", "forbidden", "unauthorized"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="xdp47-devices"'}


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers=_CHALLENGE)


def forbidden(device_id: str) -> HTTPException:
    return HTTPException(
        status_code=403,
        detail=f"this credential does not belong to device {device_id!r}; "
        "a device may only speak for itself",
    )


def bearer_credential(request: Request) -> str:
    """The device credential of ``Authorization: Bearer …``, checked offline.

    Raises:
        HTTPException: 401 when the header is missing or the credential malformed.
    """
    header = request.headers.get("authorization")
    if not header:
        raise unauthorized("missing Authorization: Bearer <device credential>")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer":
        raise unauthorized("Authorization must use the Bearer scheme")
    credential = credential.strip()
    if not looks_valid(credential, SecretKind.DEVICE_CREDENTIAL):
        raise unauthorized("malformed device credential")
    return credential
