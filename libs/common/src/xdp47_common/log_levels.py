"""Levels of other libraries' log lines, for every process (stdlib only).

httpx logs one ``HTTP Request: POST … "HTTP/1.1 202 Accepted"`` line at INFO per
request: for an agent, or the demo's embedded fleet, that is one line per
heartbeat (99.5 % of a demo's log). ``demote_request_lines`` files those lines
under DEBUG, so INFO tells what changed and DEBUG still shows every request.
"""

from __future__ import annotations

import logging

__all__ = ["CHATTY", "demote_request_lines"]

# Loggers whose INFO lines are per request (per heartbeat on the hot path).
CHATTY = ("httpx",)


class _Demote(logging.Filter):
    """Turns INFO records into DEBUG ones, dropped below ``threshold``."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno = logging.DEBUG
            record.levelname = "DEBUG"
        return record.levelno >= self.threshold


def demote_request_lines(threshold: int) -> None:
    """Log the ``CHATTY`` loggers' INFO lines at DEBUG (kept only when the
    process logs DEBUG). Idempotent: a second call replaces the first."""
    for name in CHATTY:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, _Demote)]:
            logger.removeFilter(old)
        logger.addFilter(_Demote(threshold))
