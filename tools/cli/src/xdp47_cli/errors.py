"""Errors the CLI shows as one line, and the exit codes it documents.

Every failure a user can cause or meet (an API error, an unreachable server, a bad
config file, a bad option value) becomes a :class:`CliError`; :func:`guarded` turns
it into ``error: <message>`` on stderr and the error's exit code, never a
traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import IntEnum
from typing import Any, ParamSpec, TypeVar

import httpx
import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["ApiError", "CliError", "ExitCode", "api_error", "guarded"]

P = ParamSpec("P")
R = TypeVar("R")


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2  # typer/click's own code for bad options
    PARTIAL = 3
    FAILED = 4
    ABORTED = 5
    TIMEOUT = 6
    NOTHING_UPDATED = 7  # completed, but no device was updated (none eligible)


class CliError(Exception):
    """A failure shown as one line, exiting with ``code``."""

    def __init__(self, message: str, code: int = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ApiError(CliError):
    """The API answered with an error status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status
        self.detail = detail


def _detail(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str) and detail:
            return detail
        if detail is not None:
            return str(detail)
    text = response.text.strip().splitlines()
    return text[0][:200] if text else response.reason_phrase


def api_error(response: httpx.Response) -> ApiError:
    """One line for an error answer: status, then the API's ``detail``."""
    return ApiError(response.status_code, " ".join(_detail(response).split()))


def guarded(func: Callable[P, R]) -> Callable[P, R]:
    """Run a command, rendering a :class:`CliError` as one line and exiting."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CliError as exc:
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                f"[bold red]error:[/] {escape(exc.message)}"
            )
            raise typer.Exit(int(exc.code)) from None

    return wrapper
