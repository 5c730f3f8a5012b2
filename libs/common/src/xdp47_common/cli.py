"""What every XDP47 command does before its real work: answer ``--help`` and
``--version`` without touching a server, and turn a bad setting into one line.

Standard library and pydantic only, so the agent and the demo app use it too.
Services call ``command_line`` first thing in ``main()``, build their settings
through ``load_settings`` and end with ``fail`` for any start-up problem: one line
``<prog>: <what is wrong>`` on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn, TypeVar

from pydantic import ValidationError

from xdp47_common.redact import redact
from xdp47_common.urls import describe_url

__all__ = [
    "EXIT_CONFIG",
    "EXIT_UNAVAILABLE",
    "check_can_listen",
    "command_line",
    "fail",
    "load_settings",
    "muted",
    "parse_listen_addr",
    "prepare_heap_for_serving",
    "settings_problem",
    "where",
]

EXIT_UNAVAILABLE = 1  # a dependency did not answer (a supervisor retries)
EXIT_CONFIG = 2  # a setting is wrong (retrying will not help)
_CONFIG_HINT = (
    "Configuration is read from XDP47_* environment variables; see "
    "docs/configuration.md (agent: docs/agent.md)."
)

T = TypeVar("T")


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:  # running from a source tree without metadata
        return "unknown"


def command_line(
    prog: str,
    summary: str,
    argv: Sequence[str] | None = None,
    *,
    distribution: str | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> argparse.Namespace:
    """Parse the command line; ``--help`` and ``--version`` print and exit 0.

    Args:
        prog: the command's name (``xdp47-api``).
        summary: one sentence saying what the command does.
        argv: the arguments; ``sys.argv[1:]`` when omitted.
        distribution: the package whose version ``--version`` prints (the
            ``prog`` when omitted).
        parser: a parser with the command's own arguments, to extend.

    Returns:
        The parsed arguments (empty for commands that take none).
    """
    parser = parser or argparse.ArgumentParser(prog=prog, description=summary)
    parser.epilog = parser.epilog or _CONFIG_HINT
    parser.add_argument(
        "--version",
        action="version",
        version=f"{prog} {_version(distribution or prog)}",
    )
    return parser.parse_args(argv)


def fail(prog: str, message: str, code: int = EXIT_CONFIG) -> NoReturn:
    """Write ``<prog>: <message>`` as one line on stderr and exit with ``code``."""
    # One line, whatever the message held, and no credential from a URL in it.
    line = redact(" ".join(message.split()))
    sys.stderr.write(f"{prog}: {line}\n")
    raise SystemExit(code)


def settings_problem(exc: ValidationError, prefix: str = "XDP47_") -> str:
    """Every error of a settings model as one line naming each variable."""
    parts = []
    for err in exc.errors(include_url=False):
        name = "_".join(str(p) for p in err["loc"]).upper()
        variable = f"{prefix}{name}" if name else "settings"
        if err["type"] == "missing":
            parts.append(f"{variable} is required")
            continue
        message = str(err["msg"]).removeprefix("Value error, ")
        # A model-level check, or a field check naming it, says which variable.
        named = not name or message.startswith(variable)
        parts.append(message if named else f"invalid {variable}: {message}")
    return "; ".join(parts) or "invalid settings"


def load_settings(prog: str, factory: Callable[[], T]) -> T:
    """Build settings with ``factory``; a bad value ends the process (``fail``)."""
    try:
        return factory()
    except ValidationError as exc:
        fail(prog, settings_problem(exc))
    except ValueError as exc:  # e.g. a value pydantic-settings could not decode
        fail(prog, f"invalid settings: {exc}")


@contextlib.contextmanager
def muted(*loggers: str) -> Iterator[None]:
    """Silence ``loggers`` (and their children) for a start-up check whose
    failure the command reports itself in one line: aiormq logs a refused
    connection before raising it."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def where(url: str, variable: str) -> str:
    """Hosts, ports and path of a service URL for a message (multi-host forms
    included), never its credentials; the variable's name when it has no host."""
    described = describe_url(url)
    if described.startswith("<") or described.startswith(("/", ":")):
        return variable
    return f"{described} ({variable})"


def check_can_listen(host: str, port: int, variable: str) -> str | None:
    """Why the server could not listen on ``host:port`` (a busy port, an unknown
    host), as one line naming ``variable``; None when it can. Binding once
    before the server starts turns the server's own multi-line failure into
    the command's one line."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return f"cannot listen on {variable} {host}:{port}: {reason}"
    return None


def parse_listen_addr(value: str, variable: str) -> tuple[str, int]:
    """``host:port`` (empty host: every interface) as (host, port).

    Raises:
        ValueError: naming ``variable`` and the form expected.
    """
    host, sep, port = value.strip().rpartition(":")
    if (
        not sep
        or not port.isdigit()
        or int(port) > 65535
        or any(c.isspace() for c in host)
    ):
        raise ValueError(
            f"{variable} must be host:port (e.g. 127.0.0.1:8080 or :8080 for "
            f"every interface), got {value!r}"
        )
    return host, int(port)


# The young generation's collection threshold of a serving process (CPython's
# default: 700). The objects of the requests or batches in flight (a heartbeat
# waits ~20-40 ms for its batch's confirm) come and go by the thousand and are
# freed by their reference counts, yet at 700 a young collection ran ~300 times
# a second under B1's load, promoted what was in flight, and brought on the
# older generations' collections after it: ~2.2 µs of ingest's CPU per
# heartbeat, ~0.8 of the scheduler's (measured with ``gc.callbacks``), for
# almost nothing collected. At 5,000 the same load ran 7 over ~200,000
# heartbeats, ~0.8 ms each (docs/performance.md).
YOUNG_GENERATION_THRESHOLD = 5_000


def prepare_heap_for_serving() -> None:
    """Set the cyclic collector up for serving; call once, when a service is
    built and about to serve.

    What the process has imported and built so far is moved out of the
    collector's sight: it lives as long as the process, yet every full
    collection walked it, tens of thousands of module, class and function
    objects (docs/performance.md: ~15 µs less CPU per heartbeat in ingest; in
    the scheduler's decode of a batch, ~0.9 of ~5 µs per heartbeat). And the
    young generation is collected after ``YOUNG_GENERATION_THRESHOLD``
    allocations instead of 700, so the objects of the work in flight are freed
    by their reference counts before a collection comes to walk them."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
