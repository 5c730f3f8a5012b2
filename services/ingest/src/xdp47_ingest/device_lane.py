"""The device endpoints answered inside uvicorn's HTTP protocol, without ASGI,
when nothing about the request is unusual.

A device's heartbeat or poll is ingest's whole load. Served through ASGI it pays
for uvicorn's request cycle (a scope, a task, ``receive``/``send`` coroutines and
events) before any of ingest's own work: a bare ASGI app on uvicorn costs ~35 µs
of CPU per request here, the same answer written from the protocol's parser
callbacks ~13 µs (docs/performance.md). ``device_protocol(lane)`` is uvicorn's
httptools protocol with one change: a request that ``DeviceLane`` admits is
answered from the callbacks, synchronously for a poll and from the batch's
confirm for a heartbeat; every other request, and every admitted one that turns
out unusual, takes the ASGI path (``DeviceRoutes``) unchanged.

Admitted (at the end of the headers): ``POST …/heartbeat`` and ``GET …/desired``
over HTTP/1.1 with keep-alive and no upgrade, no query, no percent-escapes, no
``Expect`` and no ``Transfer-Encoding`` (a heartbeat gives its
``Content-Length``, at most ``XDP47_MAX_BODY_BYTES``), a ``Bearer`` credential
whose identity the cache holds (``DesiredCache.cached``) for the device in the
path, on a connection with no other request in flight. Then, at the end of the
body: a heartbeat whose body validates, and a credential under its rate
(counted once, ``memory://`` windows). Whatever fails these checks is handed to
the ASGI path, which makes the same checks in its order and answers each
failure as it always does (401, 403, 413, 422, 429, 503; the body already read
is replayed to it); a request counted over its rate there is counted once more,
which changes no answer. The answers, their headers (``X-Request-ID``
included) and the request metrics are those of the ASGI path; a heartbeat is
still answered 202 only after the broker confirmed the batch holding it (503
when it did not).

Not used with tracing on (the ASGI path opens the request's span), on granian,
with the device limits in a shared storage (Redis: counting is a round trip), or
with ``XDP47_INGEST_FAST_LANE=false``.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

import structlog
from pydantic import ValidationError
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from xdp47_common.bus import PublishFailed
from xdp47_common.clock import utcnow
from xdp47_common.messages import HeartbeatBody
from xdp47_common.messages.wire import heartbeat_json
from xdp47_common.web import RateLimits
from xdp47_common.web.errors import answer_error
from xdp47_common.web.metrics import HttpMetrics
from xdp47_common.web.request_id import request_id_of
from xdp47_ingest.desired import DeviceView, etag_matches
from xdp47_ingest.device_routes import DESIRED, HEARTBEAT, PREFIX, not_accepted
from xdp47_ingest.keep_alive import KeepAliveProtocol

if TYPE_CHECKING:
    from datetime import datetime

    from xdp47_ingest.deps import Deps

__all__ = ["DeviceLane", "device_protocol"]

_log = structlog.get_logger(__name__)
_PREFIX = PREFIX.encode()
_JSON = b"content-type: application/json\r\n"
_INTERNAL = b'{"detail":"internal error"}'


class _Request:
    """An admitted request while its body arrives and its answer is awaited."""

    __slots__ = ("body", "deps", "key", "method", "start", "view")

    def __init__(self, method: bytes, deps: Deps, key: bytes, view: DeviceView) -> None:
        self.method = method
        self.deps = deps
        self.key = key
        self.view = view
        self.body = b""
        self.start = time.perf_counter()


class _InFlight:
    """Stands in for uvicorn's request cycle while a heartbeat's answer waits on
    the broker: uvicorn's connection handling reads these four attributes (a
    pipelined request waits for ``response_complete``; a graceful shutdown sets
    ``keep_alive``; a lost connection sets ``disconnected`` and the event)."""

    __slots__ = ("disconnected", "keep_alive", "response_complete")

    def __init__(self) -> None:
        self.response_complete = False
        self.keep_alive = True
        self.disconnected = False

    @property
    def message_event(self) -> _InFlight:
        return self

    def set(self) -> None:
        """The cycle's ``message_event.set()``: nobody waits on it here."""


class DeviceLane:
    """What admits and answers device requests in the protocol (see module).

    Args:
        metrics: the app's HTTP metrics (``install_web_basics``).
        rate_limits: the app's limits (``counts_in_process`` must hold).
        max_body_bytes: the largest heartbeat body admitted (larger: 413 there).
        retry_after: ``Retry-After`` of a 503.
    """

    def __init__(
        self,
        *,
        metrics: HttpMetrics,
        rate_limits: RateLimits,
        max_body_bytes: int,
        retry_after: int,
    ) -> None:
        if not rate_limits.counts_in_process:
            raise ValueError("the device lane needs in-process rate windows")
        # Set by the app's lifespan while it runs (nothing is admitted before
        # startup or after shutdown).
        self.deps: Deps | None = None
        self._metrics = metrics
        self._limits = rate_limits
        self._max_body = max_body_bytes
        self._retry_after = retry_after

    def admit(self, proto: HttpToolsProtocol) -> _Request | None:
        """At the end of a request's headers: the request when this lane answers
        it, ``None`` when the ASGI path does."""
        url: bytes = proto.url
        if not url.startswith(_PREFIX):
            return None
        # A query or a percent-escape ends up in ``leaf`` or ``device_id``,
        # neither of which then matches below.
        device_id, _, leaf = url[len(_PREFIX) :].partition(b"/")
        method: bytes = proto.parser.get_method()
        if not (
            (leaf == b"heartbeat" and method == b"POST")
            or (leaf == b"desired" and method == b"GET")
        ):
            return None
        parser = proto.parser
        if (
            not parser.should_keep_alive()
            or parser.should_upgrade()
            or parser.get_http_version() != "1.1"
        ):
            return None
        authorization = None
        length = -1
        for name, value in proto.headers:
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                if not value.isdigit():
                    return None
                length = int(value)
            elif name in (b"transfer-encoding", b"expect"):
                return None
        # A heartbeat states its length; no body the lane buffers is over the
        # limit (a poll's, if it has one, is read and ignored).
        if length > self._max_body or (method == b"POST" and length < 0):
            return None
        if authorization is None:
            return None
        # ``credential_from_header``'s parse without its shape check: a
        # credential whose hash the cache holds was issued, so it has the shape
        # (anything else misses the cache, and the ASGI path answers 401).
        scheme, _, credential = authorization.partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        deps = self.deps
        if deps is None:
            return None
        key = hashlib.sha256(credential.strip()).digest()  # ``hash_secret``
        view = deps.cache.cached(key)
        # The device id in the path is the cached one (a valid id, so the path's
        # is too), or the ASGI path answers (422, 403).
        if view is None or view.device_id.encode() != device_id:
            return None
        return _Request(method, deps, key, view)

    def serve(self, proto: HttpToolsProtocol, request: _Request) -> bool:
        """At the end of an admitted request's body: answer it (now, or when its
        batch is confirmed) and return True, or return False for the ASGI path."""
        view = request.view
        if request.method == b"GET":
            if self._limits.hit_device_now(request.key) is not None:
                return False
            self._poll(proto, request, view)
            return True
        try:
            body = HeartbeatBody.model_validate_json(request.body)
        except ValidationError:
            return False
        if self._limits.hit_device_now(request.key) is not None:
            return False
        now = utcnow()
        cycle = _InFlight()
        artifact = body.current_artifact_id

        def confirmed(error: BaseException | None) -> None:
            self._heartbeat_answer(proto, request, cycle, error, artifact, now)

        proto.cycle = cycle  # type: ignore[assignment]
        request.deps.batcher.add_callback(
            view.tenant, heartbeat_json(body, view.device_id, now), confirmed
        )
        return True

    def _poll(
        self, proto: HttpToolsProtocol, request: _Request, view: DeviceView
    ) -> None:
        etag = view.etag  # a hash of the payload: once
        headers = b"etag: " + etag.encode() + b"\r\ncache-control: no-cache\r\n"
        if_none_match = None
        for name, value in proto.headers:
            if name == b"if-none-match":
                if_none_match = value.decode("latin-1")
                break
        if etag_matches(if_none_match, etag):
            self._write(proto, request, 304, headers, b"")
        else:
            self._write(proto, request, 200, _JSON + headers, view.payload)
        proto.on_response_complete()

    def _heartbeat_answer(
        self,
        proto: HttpToolsProtocol,
        request: _Request,
        cycle: _InFlight,
        error: BaseException | None,
        artifact: UUID | None,
        now: datetime,
    ) -> None:
        if error is None:
            status, headers = 202, _JSON
            try:
                body = request.view.answer_json(artifact, now)
            except Exception:
                _log.exception("unhandled error", path=HEARTBEAT.path)
                status, body = 500, _INTERNAL
        elif isinstance(error, PublishFailed):
            answer = answer_error(not_accepted(error, self._retry_after))
            status, body = answer.status_code, bytes(answer.body)
            headers = b"".join(
                name + b": " + value + b"\r\n"
                for name, value in answer.raw_headers
                if name != b"content-length"
            )
        else:
            _log.error("unhandled error", path=HEARTBEAT.path, error=repr(error))
            status, headers, body = 500, _JSON, _INTERNAL
        cycle.response_complete = True
        if not cycle.disconnected and not proto.transport.is_closing():
            if not cycle.keep_alive:  # the server is stopping
                headers += b"connection: close\r\n"
            self._write(proto, request, status, headers, body)
            if not cycle.keep_alive:
                proto.transport.close()
        else:
            self._observe(request, status)
        proto.on_response_complete()

    def _write(
        self,
        proto: HttpToolsProtocol,
        request: _Request,
        status: int,
        headers: bytes,
        body: bytes,
    ) -> None:
        """One whole answer as uvicorn's cycle writes it (its default headers:
        ``date``), with the request's id; counted in the request metrics."""
        rid = request_id_of({"headers": proto.headers}).encode()
        head = [STATUS_LINE[status]]
        for name, value in proto.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(headers)
        if body or status not in (204, 304):
            head.append(b"content-length: %d\r\n" % len(body))
        head.append(b"x-request-id: " + rid + b"\r\n\r\n")
        head.append(body)
        proto.transport.write(b"".join(head))
        self._observe(request, status)

    def _observe(self, request: _Request, status: int) -> None:
        post = request.method == b"POST"
        self._metrics.observe(
            "POST" if post else "GET",
            HEARTBEAT.path if post else DESIRED.path,
            status,
            time.perf_counter() - request.start,
        )


def device_protocol(lane: DeviceLane) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol (with the lazy keep-alive timer,
    ``KeepAliveProtocol``) with ``lane`` answering what it admits."""

    class DeviceProtocol(KeepAliveProtocol):
        _lane: ClassVar[DeviceLane] = lane

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._admitted: _Request | None = None

        def on_message_begin(self) -> None:
            # uvicorn's, without the ASGI scope: built only for a request the
            # lane does not answer (``_to_asgi``).
            self.url = b""
            self.expect_100_continue = False
            self.headers = []
            self.scope = None  # type: ignore[assignment]

        def _to_asgi(self) -> None:
            """uvicorn's scope and request cycle for this request, from what
            the parser has given so far (its ASGI task started or queued)."""
            url, headers, expect = self.url, self.headers, self.expect_100_continue
            super().on_message_begin()
            self.url, self.expect_100_continue = url, expect
            self.headers = self.scope["headers"] = headers
            super().on_headers_complete()

        def on_headers_complete(self) -> None:
            cycle = self.cycle
            self._admitted = None
            if cycle is None or cycle.response_complete:
                try:
                    self._admitted = self._lane.admit(self)
                except Exception:
                    _log.exception("device lane failed; the ASGI path answers")
            if self._admitted is None:
                self._to_asgi()

        def on_body(self, body: bytes) -> None:
            if self._admitted is None:
                super().on_body(body)
            else:
                self._admitted.body += body

        def on_message_complete(self) -> None:
            request = self._admitted
            if request is None:
                super().on_message_complete()
                return
            self._admitted = None
            try:
                served = self._lane.serve(self, request)
            except Exception:
                _log.exception("device lane failed; the ASGI path answers")
                served = False
            if not served:
                # Still inside the parser's callback for this request: its
                # method, version and keep-alive are what the ASGI cycle reads.
                self._to_asgi()
                self.cycle.body = bytearray(request.body)
                super().on_message_complete()

    return DeviceProtocol
