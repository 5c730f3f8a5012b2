"""Structured logging for the server processes (api, ingest, scheduler).

``configure_logging`` routes everything through structlog: structlog's own loggers
and the stdlib ones (uvicorn, aio-pika, asyncpg) end in one handler on stdout whose
``ProcessorFormatter`` renders JSON lines (one object per event) or a console
format for people. Values bound with ``structlog.contextvars`` (the request id,
tenant, message or rollout id) appear in every event logged in that context.
Every line has its credentials masked (``xdp47_common.redact``): tokens in
query strings, Authorization headers, device credentials, URL passwords.
Needs structlog (the ``server`` or ``web`` extra).

Environment (read at each call, so the operator can override a service default):
``XDP47_LOG_FORMAT`` (``json`` or ``console``; default JSON unless stdout is a TTY)
and ``XDP47_LOG_LEVEL`` (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from contextvars import ContextVar
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from xdp47_common.log_levels import demote_request_lines
from xdp47_common.redact import redact_value

__all__ = ["LOG_FORMAT_ENV", "LOG_LEVEL_ENV", "REQUEST_ID", "configure_logging"]

LOG_FORMAT_ENV = "XDP47_LOG_FORMAT"
LOG_LEVEL_ENV = "XDP47_LOG_LEVEL"
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Libraries that are chatty at INFO about their own plumbing.
_QUIET = {"aio_pika": logging.WARNING, "aiormq": logging.WARNING}


def _want_json(json: bool | None, stream: TextIO) -> bool:
    if json is not None:
        return json
    fmt = os.environ.get(LOG_FORMAT_ENV, "").strip().lower()
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    if fmt:
        raise ValueError(f"{LOG_FORMAT_ENV} must be 'json' or 'console', not {fmt!r}")
    isatty = getattr(stream, "isatty", None)
    return not (isatty is not None and isatty())


def _level(level: str) -> int:
    name = os.environ.get(LOG_LEVEL_ENV, "").strip().upper() or level.upper()
    if name not in _LEVELS:
        raise ValueError(
            f"{LOG_LEVEL_ENV} must be one of {', '.join(_LEVELS)}, not {name!r}"
        )
    return int(getattr(logging, name))


def _add_service(service: str) -> Processor:
    def add(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        event.setdefault("service", service)
        return event

    return add


# The id of the HTTP request being served (``web.basics``); every log event of
# it carries ``request_id``. One ContextVar set per request is cheaper than
# binding through structlog's contextvars on every request.
REQUEST_ID: ContextVar[str | None] = ContextVar("xdp47_request_id", default=None)


def _add_request_id(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


# A terminal's colour codes (CSI sequences); never part of a JSON line.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _plain(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    # uvicorn passes a coloured copy of its message as ``color_message``.
    event.pop("color_message", None)
    message = event.get("event")
    if isinstance(message, str) and "\x1b" in message:
        event["event"] = _ANSI.sub("", message)
    return event


# Tracebacks as data, bounded: no frame's local variables (a connection error's
# frames hold whole pools and settings, thousands of characters per line) and
# at most this many frames (the outermost and innermost are kept).
_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False, max_frames=12)
)


def _redact(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    # Last before rendering: the message is formatted (uvicorn's access line
    # with its query string included) and the traceback is data or text.
    return {key: redact_value(value) for key, value in event.items()}


def configure_logging(
    service: str,
    *,
    json: bool | None = None,
    level: str = "INFO",
    stream: TextIO | None = None,
) -> None:
    """Send every log event of the process to ``stream`` (stdout) as structured lines.

    Args:
        service: the ``service`` field of every event (``api``, ``ingest`` …).
        json: JSON lines (True) or console format (False); None decides from
            ``XDP47_LOG_FORMAT``, else JSON unless the stream is a TTY.
        level: the minimum level unless ``XDP47_LOG_LEVEL`` says otherwise.
        stream: where to write; stdout when omitted.

    Raises:
        ValueError: for an unknown ``XDP47_LOG_FORMAT`` or log level, naming it.
    """
    out = stream if stream is not None else sys.stdout
    as_json = _want_json(json, out)
    threshold = _level(level)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _plain,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        _add_service(service),
    ]
    renderer: Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer()
        final: list[Processor] = [
            _TRACEBACKS,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _redact,
            renderer,
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        final = [
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _redact,
            renderer,
        ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared, processors=final
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(max(quiet, threshold))
    demote_request_lines(threshold)
    # uvicorn configures its own loggers unless told not to (log_config=None);
    # make sure they propagate to the root handler either way.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    processors: list[Any] = [
        structlog.stdlib.filter_by_level,
        *shared,
        structlog.processors.StackInfoRenderer(),
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ]
    structlog.configure(
        processors=processors,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: module-level loggers created before this call must pick
        # up the configuration, and tests reconfigure.
        cache_logger_on_first_use=False,
    )
