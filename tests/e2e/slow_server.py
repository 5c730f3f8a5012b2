"""An artifact host the test controls: it serves one file, and while ``hold`` is
set it sends the first half and then waits for ``release``, so a download is
reliably caught in the middle (a crash test needs that without timing luck).
While ``fail_next`` is above zero, a request is answered 503 instead (and counts
it down): a host that is flaky for a known number of downloads.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["HeldFileServer", "held_file_server"]


class HeldFileServer(ThreadingHTTPServer):
    daemon_threads = True
    # A whole fleet connects at once when a wave starts; the default listen
    # backlog of 5 refused some of them on a busy machine (ConnectError).
    request_queue_size = 128

    def __init__(self, content: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.content = content
        self.hold = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.held = 0  # downloads now waiting half-way
        self.served = 0  # downloads sent whole
        self.fail_next = 0  # answer this many more requests 503
        self.requests = 0  # every GET, answered or refused

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/release.bin"


class _Handler(BaseHTTPRequestHandler):
    server: HeldFileServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests += 1
            refuse = self.server.fail_next > 0
            if refuse:
                self.server.fail_next -= 1
        if refuse:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        content = self.server.content
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        half = len(content) // 2
        with contextlib.suppress(OSError):  # a killed client hangs up
            self.wfile.write(content[:half])
            self.wfile.flush()
            if self.server.hold.is_set():
                with self.server.lock:
                    self.server.held += 1
                try:
                    self.server.release.wait(60)
                finally:
                    with self.server.lock:
                        self.server.held -= 1
            self.wfile.write(content[half:])
            self.wfile.flush()
            with self.server.lock:
                self.server.served += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def held_file_server(content: bytes) -> Iterator[HeldFileServer]:
    server = HeldFileServer(content)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
