"""Per-credential request rate limits as a pure ASGI middleware (``limits``).

Every request presenting a well-formed credential in ``Authorization: Bearer`` is
counted against that credential: API tokens (``xdp47t_``) against the token limit
(``XDP47_RATE_LIMIT``), device credentials (``xdp47d_``) against the device limit
(``XDP47_DEVICE_RATE_LIMIT``). Over the limit the answer is 429 with
``Retry-After`` (whole seconds until the window resets) before the request reaches
the application: no database query, no body read. One token's flood never touches
another token's counter, so other tenants are unaffected.

What is deliberately not counted: requests without a credential or with a
malformed one (401 offline, at no cost to the database), the development token
(it has no ``xdp47t_`` form; simulated fleets claim with it) and the probes
(``PROBE_PATHS``: liveness, readiness, metrics), whatever header they carry: a
kubelet or a scraper that sends a device's header must never see 429 and restart
or lose sight of a healthy process. A per-address limit for anonymous floods
belongs to the gateway.

Counters are keyed by a SHA256 prefix of the credential, never the secret itself,
and live in ``limits`` storage: ``memory://`` by default, which is per process, so
with N replicas behind a balancer a credential gets up to N times its limit; a
shared storage URI (``redis://…``, served by redis-py's asyncio client) makes the
limit global: every replica counts against the same counter. The strategy is a
fixed window: cheapest on the hot path (one counter increment), at the price of
allowing up to twice the limit across a window boundary. With ``memory://`` the
windows are this module's own (``_LocalWindows``: clock-aligned, no background
sweep), not ``limits``' memory storage. A failing shared storage lets requests
through (logged): availability of the control plane matters more than the limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from xdp47_common.tokens import SecretKind, hash_secret, looks_valid
from xdp47_common.web.errors import answer_error

__all__ = [
    "OFF_VALUES",
    "PROBE_PATHS",
    "RateLimitMiddleware",
    "RateLimitSettings",
    "RateLimits",
    "RateVerdict",
    "parse_rate_limit",
    "rate_key",
]

_log = structlog.get_logger(__name__)
OFF_VALUES = frozenset({"", "0", "off", "none", "false"})
PROBE_PATHS = frozenset({"/livez", "/healthz", "/readyz", "/metrics"})


class RateLimitSettings(Protocol):
    """The settings fields the limits are built from (``ControlSettings`` has them)."""

    @property
    def rate_limit(self) -> str: ...
    @property
    def device_rate_limit(self) -> str: ...
    @property
    def rate_limit_storage(self) -> str: ...


def parse_rate_limit(value: str) -> list[RateLimitItem]:
    """``"100/second"`` or ``"100/second;3000/minute"``; ``off``/``0`` → no limit.

    Raises:
        ValueError: not a rate limit expression, naming it.
    """
    text = value.strip().lower()
    if text in OFF_VALUES:
        return []
    try:
        return list(parse_many(text))
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a rate limit such as 100/second or "
            "100/second;3000/minute (or off)"
        ) from exc


@dataclass(frozen=True)
class RateVerdict:
    """A credential over ``limit``; it may retry after ``retry_after`` seconds."""

    limit: RateLimitItem
    retry_after: int

    def error(self) -> HTTPException:
        """The 429 answer, with ``Retry-After``."""
        limit = self.limit
        unit = limit.GRANULARITY.name
        window = unit if limit.multiples == 1 else f"{limit.multiples} {unit}s"
        return HTTPException(
            status_code=429,
            detail=f"rate limit of {limit.amount} per {window} exceeded for this "
            f"credential; retry after {self.retry_after} s",
            headers={"Retry-After": str(self.retry_after)},
        )


def rate_key(credential_hash: bytes) -> str:
    """A credential's counter key, from its stored hash (``tokens.hash_secret``):
    never the secret itself."""
    return credential_hash[:16].hex()


class RateLimits:
    """The token and device limits over one ``limits`` storage."""

    def __init__(
        self,
        *,
        token_limit: str,
        device_limit: str,
        storage_uri: str = "memory://",
    ) -> None:
        self.token_limits = parse_rate_limit(token_limit)
        self.device_limits = parse_rate_limit(device_limit)
        self._local: _LocalWindows | None = None
        self._limiter: FixedWindowRateLimiter | None = None
        if storage_uri.removeprefix("async+").startswith("memory://"):
            self._local = _LocalWindows()
        else:
            uri = (
                storage_uri
                if storage_uri.startswith("async+")
                else f"async+{storage_uri}"
            )
            # limits' async redis storage defaults to coredis; the project ships
            # redis-py, the client most operators already run.
            options = {"implementation": "redispy"} if _is_redis(uri) else {}
            self._limiter = FixedWindowRateLimiter(storage_from_string(uri, **options))

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> RateLimits:
        return cls(
            token_limit=settings.rate_limit,
            device_limit=settings.device_rate_limit,
            storage_uri=settings.rate_limit_storage,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.token_limits or self.device_limits)

    def limits_for(self, credential: str) -> tuple[str, Sequence[RateLimitItem]]:
        """Which limits a presented credential counts against, and its kind."""
        if credential.startswith(SecretKind.DEVICE_CREDENTIAL):
            if looks_valid(credential, SecretKind.DEVICE_CREDENTIAL):
                return "device", self.device_limits
        elif credential.startswith(SecretKind.API_TOKEN) and looks_valid(
            credential, SecretKind.API_TOKEN
        ):
            return "token", self.token_limits
        return "", ()

    async def hit(self, credential: str) -> RateVerdict | None:
        """Count one request; the exceeded limit and its wait, or None."""
        kind, items = self.limits_for(credential)
        if not items:
            return None
        return await self._count(items, kind, rate_key(hash_secret(credential)))

    async def hit_device(self, credential_hash: bytes) -> RateVerdict | None:
        """``hit`` for a device credential already checked offline, by its hash
        (a device route has both at hand: one check and one hash per request)."""
        if not self.device_limits:
            return None
        return await self._count(
            self.device_limits, "device", rate_key(credential_hash)
        )

    @property
    def counts_in_process(self) -> bool:
        """Whether a device's request is counted without waiting on anything
        (no device limit, or ``memory://`` windows): ``hit_device_now`` serves."""
        return not self.device_limits or self._local is not None

    def hit_device_now(self, credential_hash: bytes) -> RateVerdict | None:
        """``hit_device`` without a suspension, where ``counts_in_process``.

        Raises:
            RuntimeError: the windows live in a shared storage (await
                ``hit_device``).
        """
        if not self.device_limits:
            return None
        if self._local is None:
            raise RuntimeError("device limits in a shared storage: await hit_device")
        return self._local.hit(self.device_limits, "device", rate_key(credential_hash))

    async def _count(
        self, items: Sequence[RateLimitItem], kind: str, key: str
    ) -> RateVerdict | None:
        if self._local is not None:
            return self._local.hit(items, kind, key)
        assert self._limiter is not None
        for item in items:
            try:
                allowed = await self._limiter.hit(item, kind, key)
                if allowed:
                    continue
                stats = await self._limiter.get_window_stats(item, kind, key)
            except Exception as exc:  # fail open: see the module docstring
                _log.warning("rate limit storage failed", error=repr(exc))
                return None
            wait = max(1, math.ceil(stats.reset_time - time.time()))
            return RateVerdict(item, wait)
        return None


class _LocalWindows:
    """Fixed windows of this process, for ``memory://``.

    ``limits``' own in-memory storage sweeps every key from a background task
    that is rescheduled as soon as it ends (a thread timer every 10 ms in its
    synchronous flavour): with thousands of devices that sweep alone cost ingest
    ~7 % of its CPU (docs/performance.md). Here the windows are aligned to the
    clock (``floor(now / period)``) and a window's counters are dropped whole
    when the next one begins: one dict update per request and limit, no sweep.
    The answer is the same fixed-window strategy as with a shared storage.
    """

    def __init__(self) -> None:
        # per (kind, amount, period): (window index, {credential key: requests})
        self._windows: dict[tuple[str, int, int], tuple[int, dict[str, int]]] = {}

    def hit(
        self, items: Sequence[RateLimitItem], kind: str, key: str
    ) -> RateVerdict | None:
        now = time.time()
        for item in items:
            period = item.get_expiry()
            index = int(now // period)
            slot_key = (kind, item.amount, period)
            slot = self._windows.get(slot_key)
            if slot is None or slot[0] != index:
                slot = self._windows[slot_key] = (index, {})
            counts = slot[1]
            n = counts.get(key, 0) + 1
            counts[key] = n
            if n > item.amount:
                wait = max(1, math.ceil((index + 1) * period - now))
                return RateVerdict(item, wait)
        return None


def _is_redis(uri: str) -> bool:
    return uri.removeprefix("async+").split(":", 1)[0] in {
        "redis",
        "rediss",
        "redis+unix",
    }


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return str(credential).strip()
            return None
    return None


class RateLimitMiddleware:
    """Answer 429 with ``Retry-After`` to a credential over its rate limit."""

    def __init__(self, app: ASGIApp, *, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in PROBE_PATHS:
            credential = _bearer(scope)
            if credential:
                verdict = await self.limits.hit(credential)
                if verdict is not None:
                    await answer_error(verdict.error())(scope, receive, send)
                    return
        await self.app(scope, receive, send)
