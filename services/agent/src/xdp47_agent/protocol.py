"""The device protocol over HTTP: claim and heartbeat, with retries.

Network errors and 429/502/503/504 are retried with jittered exponential backoff
(tenacity), never sooner than the server's ``Retry-After``. A 401 on heartbeat
surfaces as ``CredentialRejected`` so the agent can re-claim; other 4xx are
``ProtocolError`` (a bug or a misconfiguration, not worth hammering the server).

A hostile or broken server cannot hold the agent: an answer is read up to
``MAX_ANSWER_BYTES`` (a larger one is refused, not buffered), and the whole request,
trickled or not, must finish within ``request_timeout`` (else it is retried like a
network error). A claim answer must name the device id asked for, in the device id
alphabet, since the id becomes part of URLs and is stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from xdp47_agent.config import AgentConfig, check_http_url
from xdp47_common.clock import utcnow
from xdp47_common.messages import HeartbeatBody
from xdp47_common.models import DeviceClaim, DeviceClaimed
from xdp47_common.models.base import DEVICE_ID_PATTERN

__all__ = [
    "MAX_ANSWER_BYTES",
    "ControlClient",
    "CredentialRejected",
    "ProtocolError",
    "Retryable",
    "heartbeat_base",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
# A desired state or claim answer is a few hundred bytes; anything near this is
# not one.
MAX_ANSWER_BYTES = 64 << 10
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)


# What to change when heartbeats to the URL from each source answer 404.
_NOT_INGEST = {
    "XDP47_INGEST_URL": "XDP47_INGEST_URL does not point at ingest; set it to the "
    "ingest service's base URL",
    "claim": "the ingest URL the control plane announced does not serve heartbeats; "
    "fix XDP47_INGEST_PUBLIC_URL on the api, or set XDP47_INGEST_URL on the agent",
    "XDP47_CONTROL_URL": "XDP47_CONTROL_URL serves no heartbeats (an api without a "
    "gateway in front); set XDP47_INGEST_URL on the agent to the ingest service's "
    "base URL, or XDP47_INGEST_PUBLIC_URL on the api so claims announce it",
}


def heartbeat_base(config: AgentConfig, claimed: str | None) -> tuple[str, str]:
    """The heartbeat base URL and the setting it came from: an explicit
    ``XDP47_INGEST_URL`` wins over the claim answer, which wins over the
    control URL."""
    if config.ingest_url:
        return config.ingest_url, "XDP47_INGEST_URL"
    if claimed:
        return claimed, "claim"
    return config.control_url, "XDP47_CONTROL_URL"


class Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CredentialRejected(Exception):
    """The server answered 401: the stored credential is no longer valid."""


class ProtocolError(Exception):
    """A non-retryable answer (4xx other than 401, or a malformed body)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or utcnow())).total_seconds())


async def _read_bounded(response: httpx.Response, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise ProtocolError(f"{what}: answer larger than {MAX_ANSWER_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _check(response: httpx.Response, body: bytes, what: str) -> None:
    if response.status_code in _RETRY_STATUSES:
        raise Retryable(
            f"{what}: HTTP {response.status_code}",
            parse_retry_after(response.headers.get("retry-after")),
        )
    if response.status_code == 401:
        raise CredentialRejected(f"{what}: HTTP 401")
    if response.status_code >= 400:
        text = body[:300].decode("utf-8", "replace")
        raise ProtocolError(
            f"{what}: HTTP {response.status_code}: {text}", response.status_code
        )


class ControlClient:
    """Claim and heartbeat calls on one shared keep-alive ``httpx.AsyncClient``."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: AgentConfig,
        *,
        sleep: Sleep,
        attempts: int = 8,
        max_backoff: float = 30.0,
    ) -> None:
        self._client = client
        self._config = config
        self._sleep = sleep
        self._attempts = attempts
        self._jitter = wait_random_exponential(multiplier=0.5, max=max_backoff)

    def _wait(self, state: RetryCallState) -> float:
        delay = float(self._jitter(state))
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, self._config.max_retry_after))
        # A retry is not a change of state: the step's failure, if the retries
        # run out, is logged once by Agent.run.
        log.debug("retrying in %.2fs after %s", delay, exc)
        return delay

    async def _post(
        self, url: str, token: str, payload: dict[str, Any], what: str
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Retryable),
            wait=self._wait,
            stop=stop_after_attempt(self._attempts),
            sleep=self._sleep,
            reraise=True,
        ):
            with attempt:
                response, body = await self._send(url, payload, headers, what)
                _check(response, body, what)
                try:
                    data = json.loads(body)
                except ValueError as exc:
                    raise ProtocolError(f"{what}: response is not JSON") from exc
                if not isinstance(data, dict):
                    raise ProtocolError(f"{what}: response is not a JSON object")
                return data
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _send(
        self, url: str, payload: dict[str, Any], headers: dict[str, str], what: str
    ) -> tuple[httpx.Response, bytes]:
        timeout = self._config.request_timeout
        request = self._client.build_request(
            "POST", url, json=payload, headers=headers, timeout=timeout
        )
        try:
            async with asyncio.timeout(timeout):
                response = await self._client.send(
                    request, stream=True, follow_redirects=False
                )
                try:
                    body = await _read_bounded(response, what)
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            raise Retryable(f"{what}: no complete answer in {timeout}s") from exc
        except httpx.TransportError as exc:
            raise Retryable(f"{what}: {type(exc).__name__}: {exc}") from exc
        return response, body

    async def claim(self, device_id: str | None) -> DeviceClaimed:
        """Claim (or re-claim, rotating the credential) this device."""
        body = DeviceClaim(
            tenant=self._config.tenant,
            labels=dict(self._config.device_labels),
            properties=dict(self._config.device_properties),
            device_id=device_id,
            channel=self._config.channel,
            timezone=self._config.device_timezone,
        )
        data = await self._post(
            f"{self._config.control_url}/api/devices/claim",
            self._config.agent_token.get_secret_value(),
            body.model_dump(mode="json"),
            "claim",
        )
        try:
            claimed = DeviceClaimed.model_validate(data)
        except ValueError as exc:
            raise ProtocolError(f"claim: unexpected response: {exc}") from exc
        if not _DEVICE_ID.fullmatch(claimed.device_id) or (
            device_id is not None and claimed.device_id != device_id
        ):
            raise ProtocolError(
                f"claim: answer names device {claimed.device_id[:130]!r}, "
                f"not {device_id!r}"
            )
        if claimed.ingest_url is not None:
            try:
                url = check_http_url(claimed.ingest_url, "claim answer's ingest_url")
            except ValueError as exc:
                raise ProtocolError(f"claim: {exc}") from None
            claimed = claimed.model_copy(update={"ingest_url": url})
        return claimed

    async def heartbeat(
        self,
        device_id: str,
        credential: str,
        body: HeartbeatBody,
        claimed_ingest_url: str | None = None,
    ) -> dict[str, Any]:
        """Post one heartbeat; returns the raw desired-state object to validate.

        The base URL is ``XDP47_INGEST_URL`` when set, else the ingest URL of the
        claim answer, else the control URL. A 404 there means nothing serves
        heartbeats at that address: the error says which setting to change.
        """
        base, source = heartbeat_base(self._config, claimed_ingest_url)
        try:
            return await self._post(
                f"{base}/api/devices/{device_id}/heartbeat",
                credential,
                body.model_dump(mode="json"),
                "heartbeat",
            )
        except ProtocolError as exc:
            if exc.status != 404:
                raise
            raise ProtocolError(
                f"heartbeat: HTTP 404 from {base}: {_NOT_INGEST[source]}", 404
            ) from None
