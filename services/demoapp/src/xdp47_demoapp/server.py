"""The demo app's HTTP server: ``GET /metrics`` (and ``/healthz``) per device.

``DemoApp`` runs a stdlib ``ThreadingHTTPServer`` in a daemon thread, so a test or
a fleet simulation can start many in one process (port 0 picks a free port). The
applied version is re-read on every request: the agent's atomic rename is all
the coordination needed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from xdp47_common.cli import parse_listen_addr
from xdp47_demoapp.metrics import read_metrics

__all__ = ["DemoApp", "parse_addr"]

log = logging.getLogger(__name__)


def parse_addr(addr: str) -> tuple[str, int]:
    """``host:port`` → (host, port); raises ValueError naming the bad value."""
    host, port = parse_listen_addr(addr, "XDP47_DEMOAPP_ADDR")
    return host or "127.0.0.1", port


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._json(
                200,
                read_metrics(
                    self.server.state_dir,
                    self.server.bad_versions,
                    self.server.subtle_versions,
                ),
            )
        elif path == "/healthz":
            self._json(200, {"ok": True})
        else:
            self._json(404, {"detail": f"no route {path}; try /metrics"})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        addr: tuple[str, int],
        state_dir: Path,
        bad_versions: frozenset[str],
        subtle_versions: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(addr, _Handler)
        self.state_dir = state_dir
        self.bad_versions = bad_versions
        self.subtle_versions = subtle_versions


class DemoApp:
    """One device's demo app; ``start()`` binds, ``stop()`` shuts down."""

    def __init__(
        self,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = 9100,
        bad_versions: Iterable[str] = (),
        subtle_versions: Iterable[str] = (),
    ) -> None:
        self.state_dir = state_dir
        self._addr = (host, port)
        self._bad = frozenset(bad_versions)
        self._subtle = frozenset(subtle_versions)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Bind and serve in a background thread; returns the /metrics URL."""
        if self._server is None:
            self._server = _Server(self._addr, self.state_dir, self._bad, self._subtle)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                name=f"demoapp-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self.metrics_url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("DemoApp is not started")
        return int(self._server.server_address[1])

    @property
    def metrics_url(self) -> str:
        host = self._addr[0] if self._addr[0] not in ("", "0.0.0.0") else "127.0.0.1"
        return f"http://{host}:{self.port}/metrics"
