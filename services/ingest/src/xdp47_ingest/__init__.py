"""XDP47 ingest: the device-facing heartbeat fast path.

Validates a heartbeat, publishes it with a publisher confirm and answers with the
device's desired state. It never writes PostgreSQL on the request path.
"""

from xdp47_ingest.app import create_app
from xdp47_ingest.settings import IngestSettings

__all__ = ["IngestSettings", "create_app"]
