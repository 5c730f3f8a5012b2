"""The device protocol over HTTP: claim and heartbeat, with retries.

Network errors and 429/502/503/504 are retried with jittered exponential backoff
(full jitter), never sooner than the server's ``Retry-After``. A 401 on heartbeat
surfaces as ``CredentialRejected`` so the agent can re-claim; other 4xx are
``ProtocolError`` (a bug or a misconfiguration, not worth hammering the server).

A hostile or broken server cannot hold the agent: an answer is read up to
``MAX_ANSWER_BYTES`` (a larger one is refused, not buffered), and the whole request,
trickled or not, must finish within ``request_timeout`` (else it is retried like a
network error). A claim answer must name the device id asked for, in the device id
alphabet, since the id becomes part of URLs and is stored.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from xdp47_agent.config import DEVICE_ID_PATTERN, AgentConfig, check_http_url
from xdp47_agent.http import Http, HttpError, read_bounded
from xdp47_agent.wire import HeartbeatBody, claim_body, utcnow

__all__ = [
    "MAX_ANSWER_BYTES",
    "Claimed",
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
# json.dumps with separators builds an encoder per call; one serves every body.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


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


class Claimed(NamedTuple):
    """A claim answer (``DeviceClaimed``)."""

    device_id: str
    tenant: str
    credential: str
    ingest_url: str | None = None


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
    from email.utils import parsedate_to_datetime  # rare: spare the import

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or utcnow())).total_seconds())


def _check(status: int, headers: Mapping[str, str], body: bytes, what: str) -> None:
    if status in _RETRY_STATUSES:
        raise Retryable(
            f"{what}: HTTP {status}", parse_retry_after(headers.get("retry-after"))
        )
    if status == 401:
        raise CredentialRejected(f"{what}: HTTP 401")
    if status >= 400:
        text = body[:300].decode("utf-8", "replace")
        raise ProtocolError(f"{what}: HTTP {status}: {text}", status)


class ControlClient:
    """Claim and heartbeat calls over one shared ``Http``."""

    def __init__(
        self,
        client: Http,
        config: AgentConfig,
        *,
        sleep: Sleep,
        attempts: int = 8,
        max_backoff: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._config = config
        self._sleep = sleep
        self._attempts = attempts
        self._max_backoff = max_backoff
        self._rng = rng or random.Random()

    def _wait(self, attempt: int, exc: Retryable) -> float:
        # Full jitter, doubling from 0.5 s up to max_backoff.
        delay = self._rng.uniform(0, min(self._max_backoff, 0.5 * 2 ** (attempt - 1)))
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, self._config.max_retry_after))
        # A retry is not a change of state: the step's failure, if the retries
        # run out, is logged once by Agent.run.
        log.debug("retrying in %.2fs after %s", delay, exc)
        return delay

    async def _post(
        self, url: str, token: str, payload: dict[str, Any], what: str
    ) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        body = _ENCODE(payload).encode()
        for attempt in range(1, self._attempts + 1):
            try:
                status, answer_headers, answer = await self._send(
                    url, body, headers, what
                )
                _check(status, answer_headers, answer, what)
            except Retryable as exc:
                if attempt == self._attempts:
                    raise
                await self._sleep(self._wait(attempt, exc))
                continue
            try:
                data = json.loads(answer)
            except ValueError as exc:
                raise ProtocolError(f"{what}: response is not JSON") from exc
            if not isinstance(data, dict):
                raise ProtocolError(f"{what}: response is not a JSON object")
            return data
        raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover

    async def _send(
        self, url: str, body: bytes, headers: dict[str, str], what: str
    ) -> tuple[int, Mapping[str, str], bytes]:
        timeout = self._config.request_timeout
        try:
            response = await self._client.request(
                "POST",
                url,
                headers=headers,
                body=body,
                read_timeout=timeout,
                deadline=time.monotonic() + timeout,
            )
            try:
                data = await read_bounded(response, MAX_ANSWER_BYTES, what)
            except ValueError as exc:
                raise ProtocolError(str(exc)) from None
            finally:
                await response.aclose()
        except HttpError as exc:
            raise Retryable(f"{what}: {type(exc).__name__}: {exc}") from exc
        return response.status, response.headers, data

    async def claim(self, device_id: str | None) -> Claimed:
        """Claim (or re-claim, rotating the credential) this device."""
        body = claim_body(
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
            body,
            "claim",
        )
        texts = {k: data.get(k) for k in ("device_id", "tenant", "credential")}
        ingest = data.get("ingest_url")
        bad = [k for k, v in texts.items() if not isinstance(v, str)]
        if ingest is not None and not isinstance(ingest, str):
            bad.append("ingest_url")
        if bad:
            raise ProtocolError(f"claim: unexpected response: {', '.join(bad)}")
        claimed = Claimed(
            device_id=str(texts["device_id"]),
            tenant=str(texts["tenant"]),
            credential=str(texts["credential"]),
            ingest_url=ingest,
        )
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
            claimed = claimed._replace(ingest_url=url)
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
                body.to_json(),
                "heartbeat",
            )
        except ProtocolError as exc:
            if exc.status != 404:
                raise
            raise ProtocolError(
                f"heartbeat: HTTP 404 from {base}: {_NOT_INGEST[source]}", 404
            ) from None
