"""URLs of this service that answers name, built from the request they answer."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from fastapi import Request

__all__ = ["download_url"]


def download_url(request: Request) -> Callable[[UUID], str]:
    """The download URL of an artifact id, on the URL ``request`` came in on."""

    def url(artifact_id: UUID) -> str:
        return str(request.url_for("download_artifact", artifact_id=artifact_id))

    return url
