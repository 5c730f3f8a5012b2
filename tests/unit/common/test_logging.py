"""Structured logs: JSON lines with the bound fields, stdlib loggers routed through
the same formatter, and the request id taken or made, bound and returned."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from xdp47_common.logging import configure_logging
from xdp47_common.web import bind_request_context, install_web_basics


@pytest.fixture
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("XDP47_LOG_FORMAT", raising=False)
    monkeypatch.delenv("XDP47_LOG_LEVEL", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def test_json_lines_carry_bound_fields(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("scheduler", json=True, stream=out)
    structlog.contextvars.bind_contextvars(rollout_id="r-1", message_id="m-9")
    structlog.get_logger("xdp47.test").info("wave started", wave=2)
    [line] = _lines(out)
    assert line["event"] == "wave started"
    assert line["wave"] == 2
    assert line["rollout_id"] == "r-1"
    assert line["message_id"] == "m-9"
    assert line["service"] == "scheduler"
    assert line["level"] == "info"
    assert line["logger"] == "xdp47.test"
    assert line["ts"].endswith("Z")


def test_stdlib_loggers_go_through_the_same_formatter(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("api", json=True, stream=out)
    structlog.contextvars.bind_contextvars(request_id="abc")
    logging.getLogger("uvicorn.error").warning("listening on %s", "0.0.0.0:8080")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("asyncpg").exception("query failed")
    first, second = _lines(out)
    assert first["event"] == "listening on 0.0.0.0:8080"
    assert first["logger"] == "uvicorn.error"
    assert first["request_id"] == "abc"
    assert first["service"] == "api"
    assert second["level"] == "error"
    assert "RuntimeError" in json.dumps(second["exception"])


def test_environment_chooses_format_and_level(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setenv("XDP47_LOG_FORMAT", "json")
    monkeypatch.setenv("XDP47_LOG_LEVEL", "warning")
    configure_logging("ingest", stream=out)
    log = structlog.get_logger("x")
    log.info("hidden")
    log.warning("shown")
    assert [line["event"] for line in _lines(out)] == ["shown"]

    console = io.StringIO()
    monkeypatch.setenv("XDP47_LOG_FORMAT", "console")
    configure_logging("ingest", stream=console)
    structlog.get_logger("x").warning("plain", k=1)
    text = console.getvalue()
    assert "plain" in text
    assert not text.lstrip().startswith("{")


@pytest.mark.parametrize(
    ("var", "value"), [("XDP47_LOG_FORMAT", "xml"), ("XDP47_LOG_LEVEL", "LOUD")]
)
def test_bad_environment_is_named(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=var):
        configure_logging("api", stream=io.StringIO())


def _app() -> FastAPI:
    app = FastAPI()
    install_web_basics(app, max_body_bytes=1024, checks={}, metrics_prefix="xdp47_test")

    @app.post("/work")
    async def work() -> dict[str, str]:
        bind_request_context(tenant="acme")
        structlog.get_logger("xdp47.route").info("working")
        return {"ok": "yes"}

    return app


async def _post(headers: dict[bytes, bytes], body: bytes = b"") -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await c.post("/work", headers=headers, content=body)


async def test_request_id_round_trips_into_the_logs(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("api", json=True, stream=out)
    r = await _post({b"X-Request-ID": b"req-123"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "req-123"
    [line] = [x for x in _lines(out) if x["event"] == "working"]
    assert line["request_id"] == "req-123"
    assert line["tenant"] == "acme"
    # Nothing leaks into the next request's context.
    assert structlog.contextvars.get_contextvars() == {}


@pytest.mark.parametrize(
    "incoming", [None, b"has space", b"x" * 129, "ümlaut".encode(), b"a\x01b"]
)
async def test_missing_or_unsafe_request_id_is_replaced(
    restore_logging: None, incoming: bytes | None
) -> None:
    out = io.StringIO()
    configure_logging("api", json=True, stream=out)
    headers: dict[bytes, bytes] = {}
    if incoming is not None:
        headers[b"X-Request-ID"] = incoming
    r = await _post(headers)
    made = r.headers["x-request-id"]
    assert made.encode() != incoming
    assert len(made) == 32
    assert int(made, 16) >= 0
    [line] = [x for x in _lines(out) if x["event"] == "working"]
    assert line["request_id"] == made


async def test_error_answers_carry_the_request_id() -> None:
    r = await _post({b"X-Request-ID": b"big-1"}, body=b"x" * 2048)
    assert r.status_code == 413
    assert r.headers["x-request-id"] == "big-1"


def test_json_lines_hold_no_ansi_escape(restore_logging: None) -> None:
    """uvicorn's coloured copy of its message (``color_message``) and any colour
    code in a message stay out of JSON lines."""
    out = io.StringIO()
    configure_logging("api", json=True, stream=out)
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on %s",
        "http://127.0.0.1:8000",
        extra={"color_message": "Uvicorn running on \x1b[1m%s\x1b[0m"},
    )
    logging.getLogger("uvicorn.error").info("\x1b[32mINFO\x1b[0m started")
    raw = out.getvalue()
    assert "\x1b" not in raw
    assert "\\u001b" not in raw
    lines = _lines(out)
    assert [line["event"] for line in lines] == [
        "Uvicorn running on http://127.0.0.1:8000",
        "INFO started",
    ]
    assert all("color_message" not in line for line in lines)


def test_tracebacks_are_bounded_and_show_no_locals(restore_logging: None) -> None:
    """A connection error's traceback names its frames but not their locals."""
    out = io.StringIO()
    configure_logging("scheduler", json=True, stream=out)
    secret_pool = "x" * 5000

    def connect(depth: int) -> None:
        pool = secret_pool  # a big local, as an asyncpg pool is
        if depth:
            connect(depth - 1)
        raise ConnectionRefusedError(111, f"Connect call failed {len(pool)}")

    try:
        connect(40)
    except OSError:
        logging.getLogger("xdp47_scheduler.service").exception("tick failed")
    [line] = _lines(out)
    assert len(out.getvalue()) < 8000
    assert secret_pool not in out.getvalue()
    [exc] = line["exception"]
    assert exc["exc_type"] == "ConnectionRefusedError"
    # 12 frames and one saying how many were left out.
    assert 1 <= len(exc["frames"]) <= 13
    assert all("locals" not in frame for frame in exc["frames"])


@pytest.mark.parametrize(
    ("level", "shown"), [("INFO", False), ("DEBUG", True)], ids=["info", "debug"]
)
def test_http_client_request_lines_are_debug(
    restore_logging: None, level: str, shown: bool
) -> None:
    """httpx's one INFO line per request (per heartbeat) is logged at DEBUG."""
    out = io.StringIO()
    configure_logging("demo", json=True, stream=out, level=level)
    logging.getLogger("httpx").info('HTTP Request: POST http://x/v1/heartbeat "202"')
    logging.getLogger("httpx").warning("connection pool full")
    lines = _lines(out)
    assert [(x["level"], x["event"][:13]) for x in lines] == (
        [("debug", "HTTP Request:")] if shown else []
    ) + [("warning", "connection po")]
