"""``xdp47-demoapp``: serve one device's /metrics until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from xdp47_common.cli import command_line, fail
from xdp47_common.redact import configure_plain_logging
from xdp47_demoapp.metrics import parse_bad_versions
from xdp47_demoapp.server import DemoApp, parse_addr

__all__ = ["main"]

log = logging.getLogger("xdp47_demoapp")


PROG = "xdp47-demoapp"


def main() -> None:
    command_line(PROG, "Serve one demo device's /metrics, derived from its version.")
    configure_plain_logging(logging.INFO, "%(asctime)s %(levelname)s %(message)s")
    try:
        host, port = parse_addr(os.environ.get("XDP47_DEMOAPP_ADDR", "127.0.0.1:9100"))
    except ValueError as exc:
        fail(PROG, str(exc))
    app = DemoApp(
        Path(os.environ.get("XDP47_STATE_DIR", "/var/lib/xdp47")),
        host,
        port,
        parse_bad_versions(os.environ.get("XDP47_DEMO_BAD_VERSIONS")),
        parse_bad_versions(os.environ.get("XDP47_DEMO_SUBTLE_VERSIONS")),
    )
    try:
        url = app.start()
    except OSError as exc:
        fail(PROG, f"cannot listen on XDP47_DEMOAPP_ADDR {host}:{port}: {exc.strerror}")
    log.info("serving %s for %s", url, app.state_dir)
    stopped = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stopped.wait()
    app.stop()


if __name__ == "__main__":
    main()
