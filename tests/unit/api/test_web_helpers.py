"""Pure pieces of the web layer: the body-limit middleware, validation error
messages, cursors, and authentication refusing malformed tokens without a query."""

from __future__ import annotations

import pytest
from fastapi import HTTPException
from fastapi.security import HTTPAuthorizationCredentials, SecurityScopes
from starlette.requests import Request

from xdp47_api.auth import authenticate
from xdp47_api.pagination import decode_cursor, encode_cursor, time_id_cursor
from xdp47_common.settings import ControlSettings
from xdp47_common.web import BodySizeLimitMiddleware, format_validation_errors


async def _echo_app(scope, receive, send):
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def _call(chunks: list[bytes], headers=()):
    sent: list[dict[str, object]] = []
    pulled = 0

    async def receive():
        nonlocal pulled
        pulled += 1
        i = pulled - 1
        return {
            "type": "http.request",
            "body": chunks[i],
            "more_body": i < len(chunks) - 1,
        }

    async def send(msg):
        sent.append(msg)

    app = BodySizeLimitMiddleware(_echo_app, max_body_bytes=100)
    scope = {"type": "http", "headers": list(headers)}
    await app(scope, receive, send)
    return sent[0]["status"], pulled


async def test_body_within_limit_passes():
    assert await _call([b"x" * 60, b"x" * 40]) == (200, 2)


async def test_declared_length_over_limit_is_refused_unread():
    status, pulled = await _call([b"x"], headers=[(b"content-length", b"101")])
    assert (status, pulled) == (413, 0)


async def test_streamed_body_is_cut_at_the_first_chunk_over():
    status, pulled = await _call([b"x" * 60, b"x" * 60, b"x" * 60, b"x" * 60])
    assert (status, pulled) == (413, 2)


def test_validation_messages_name_fields():
    detail, items = format_validation_errors(
        [
            {
                "loc": ("body", "sha256"),
                "msg": "bad",
                "type": "string_pattern_mismatch",
            },
            {"loc": ("body", "x"), "msg": "Extra inputs", "type": "extra_forbidden"},
        ]
    )
    assert detail == "body.sha256: bad; body.x: unknown field"
    assert [i["field"] for i in items] == ["body.sha256", "body.x"]


def test_cursor_round_trip():
    assert decode_cursor(encode_cursor("a", 3), 2) == ["a", 3]


@pytest.mark.parametrize("bad", ["%%%", "bm90anNvbg", encode_cursor("a")])
def test_garbage_cursor_is_422(bad):
    with pytest.raises(HTTPException) as exc:
        decode_cursor(bad, 2)
    assert exc.value.status_code == 422
    assert "cursor" in exc.value.detail


def test_time_id_cursor_with_bad_values_is_422():
    with pytest.raises(HTTPException) as exc:
        time_id_cursor(encode_cursor("not-a-time", "x"))
    assert exc.value.status_code == 422


class _NoDatabase:
    def __getattr__(self, name):
        raise AssertionError("a malformed token must not reach the database")


class _Services:
    settings = ControlSettings()
    repos = _NoDatabase()


@pytest.mark.parametrize("token", ["garbage", "xdp47t_" + "a" * 49, "devtoken123"])
async def test_malformed_token_is_refused_before_any_query(token):
    request = Request({"type": "http", "query_string": b"", "headers": []})
    with pytest.raises(HTTPException) as exc:
        await authenticate(
            request,
            SecurityScopes([]),
            _Services(),  # type: ignore[arg-type]
            HTTPAuthorizationCredentials(scheme="Bearer", credentials=token),
        )
    assert exc.value.status_code == 401
    assert exc.value.detail == "malformed token"
