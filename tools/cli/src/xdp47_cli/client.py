"""The HTTP client of the CLI: bearer auth, one-line errors, and pagination.

Every request goes through :meth:`ApiClient.request`, which turns an error answer
into an :class:`~xdp47_cli.errors.ApiError` and a transport failure into a
:class:`~xdp47_cli.errors.CliError` naming the URL. Lists follow the API's
``X-Next-Cursor`` (or ``Link: rel="next"``) header page by page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

import httpx

from xdp47_cli.errors import CliError, api_error

__all__ = ["PAGE_MAX", "ApiClient", "Query", "next_cursor"]

PAGE_MAX = 1000  # the API's largest page
TIMEOUT = httpx.Timeout(30.0, connect=10.0)

QueryValue = str | int | float | bool | None
Query = Mapping[str, QueryValue | Sequence[str]]

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class ApiClient:
    """A thin, synchronous client for the XDP47 REST API."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": "xdp47-cli",
                "Accept": "application/json",
            },
            timeout=TIMEOUT,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Query | None = None,
        json: Any = None,
        content: bytes | BinaryIO | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; any answer outside 2xx raises ``ApiError``."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(
                method,
                path,
                params=clean,
                json=json,
                content=content,
                headers=headers,
            )
        except httpx.ConnectError as exc:
            raise CliError(f"cannot connect to the API at {self.url}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise CliError(f"the API at {self.url} did not answer in time") from exc
        except httpx.TransportError as exc:
            raise CliError(f"request to the API at {self.url} failed: {exc}") from exc
        if response.is_error:
            raise api_error(response)
        return response

    def get(self, path: str, *, params: Query | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body).json()

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, json=body).json()

    def pages(
        self, path: str, *, params: Query | None = None, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield list items across pages: at most ``limit``, or all when None."""
        query: dict[str, Any] = dict(params or {})
        wanted = limit
        while True:
            query["limit"] = PAGE_MAX if wanted is None else min(wanted, PAGE_MAX)
            response = self.request("GET", path, params=query)
            items = response.json()
            if not isinstance(items, list):
                raise CliError(f"GET {path}: expected a JSON array from the API")
            yield from items
            if wanted is not None:
                wanted -= len(items)
                if wanted <= 0:
                    return
            cursor = next_cursor(response)
            if cursor is None or not items:
                return
            query["cursor"] = cursor


def next_cursor(response: httpx.Response) -> str | None:
    """The cursor of the next page, from ``X-Next-Cursor`` or the ``Link`` URL."""
    cursor: str | None = response.headers.get("X-Next-Cursor")
    if cursor:
        return cursor
    match = _LINK_NEXT.search(response.headers.get("Link", ""))
    if match is None:
        return None
    linked: str | None = httpx.URL(match.group(1)).params.get("cursor")
    return linked
