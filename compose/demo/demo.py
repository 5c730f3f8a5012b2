"""Demo profile of the compose stack: an artifact server and a seeding job.

``demo.py serve`` serves two deterministic demo artifacts over HTTP (a good
``1.1.0`` and a ``2.0.0-bad`` that the demo app reports as failing), with an
``index.json`` naming their SHA256 and size. The bytes depend only on the version,
so a restarted server still matches the artifacts registered in the API.

``demo.py seed`` creates the demo tenant (when missing), registers both artifacts
and a policy, waits for the demo devices to claim, then creates and starts a
rollout of ``1.1.0`` over them in waves. It talks to the REST API only, with the
development token, and is idempotent: a second run finds everything and exits 0.

Standard library only, so it runs in the agent image. Settings (environment):
``XDP47_CONTROL_URL``, ``XDP47_AGENT_TOKEN``, ``XDP47_TENANT``,
``XDP47_DEMO_ARTIFACT_URL``, ``XDP47_DEMO_DEVICES``, ``XDP47_DEMO_SELECTOR``,
``XDP47_DEMO_WAVES``, ``XDP47_DEMO_TIMEOUT``, ``XDP47_DEMO_ARTIFACT_ADDR`` (serve).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("xdp47-demo")

VERSIONS = ("1.1.0", "2.0.0-bad")
ROLLOUT_VERSION = "1.1.0"
ARTIFACT_BYTES = 256 * 1024
POLICY_NAME = "demo"


def artifact_bytes(version: str) -> bytes:
    """Deterministic content for ``version``: a SHA256 hash chain, 256 KiB."""
    block = hashlib.sha256(f"xdp47 demo artifact {version}".encode()).digest()
    out = bytearray()
    while len(out) < ARTIFACT_BYTES:
        out += block
        block = hashlib.sha256(block).digest()
    return bytes(out[:ARTIFACT_BYTES])


def write_artifacts(directory: Path) -> list[dict[str, Any]]:
    """Write every demo artifact and ``index.json`` into ``directory``."""
    index = []
    for version in VERSIONS:
        data = artifact_bytes(version)
        name = f"demo-{version}.bin"
        (directory / name).write_bytes(data)
        index.append(
            {
                "file": name,
                "version": version,
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            }
        )
    (directory / "index.json").write_text(json.dumps(index, indent=2))
    return index


def serve() -> None:
    host, _, port = os.environ.get(
        "XDP47_DEMO_ARTIFACT_ADDR", "0.0.0.0:8000"
    ).rpartition(":")
    directory = Path(tempfile.mkdtemp(prefix="xdp47-artifacts-"))
    write_artifacts(directory)
    handler = partial(SimpleHTTPRequestHandler, directory=str(directory))
    server = ThreadingHTTPServer((host, int(port)), handler)
    # PID 1 in a container ignores SIGTERM unless it installs a handler.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("serving demo artifacts from %s on %s:%s", directory, host, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


class Api:
    """A minimal JSON client for the XDP47 REST API."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw) if raw else None
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def expect(
        self, method: str, path: str, body: dict[str, Any] | None, *ok: int
    ) -> Any:
        status, payload = self.call(method, path, body)
        if status not in ok:
            raise SystemExit(f"demo seed: {method} {path} answered {status}: {payload}")
        return payload


def poll(what: str, check: Any, timeout: float, every: float = 2.0) -> Any:
    """Call ``check()`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (OSError, ValueError) as exc:  # not up yet: connection refused, 502
            result = None
            log.info("waiting for %s: %s", what, exc)
        if result:
            return result
        if time.monotonic() > deadline:
            raise SystemExit(f"demo seed: gave up waiting for {what} after {timeout}s")
        time.sleep(every)


def fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def seed() -> None:
    env = os.environ
    api = Api(
        env.get("XDP47_CONTROL_URL", "http://gateway:8080"), env["XDP47_AGENT_TOKEN"]
    )
    tenant = env.get("XDP47_TENANT", "demo")
    artifact_url = env.get("XDP47_DEMO_ARTIFACT_URL", "http://demo-artifacts:8000")
    devices = int(env.get("XDP47_DEMO_DEVICES", "3"))
    # Handed to the API as typed: it parses selectors (and reports mistakes).
    selector = env.get("XDP47_DEMO_SELECTOR", "fleet=demo")
    waves = int(env.get("XDP47_DEMO_WAVES", "3"))
    timeout = float(env.get("XDP47_DEMO_TIMEOUT", "180"))

    poll("the API", lambda: api.call("GET", "/readyz")[0] == 200, timeout)

    tenants = api.expect("GET", "/api/tenants", None, 200)
    if tenant not in {t["id"] for t in tenants}:
        api.expect("POST", "/api/tenants", {"id": tenant, "name": "Demo"}, 201, 409)
        log.info("created tenant %s", tenant)

    index = poll(
        "the artifact server", lambda: fetch_json(f"{artifact_url}/index.json"), timeout
    )
    artifact_ids: dict[str, str] = {}
    for entry in index:
        query = urllib.parse.urlencode({"version": entry["version"]})
        found = [
            a
            for a in api.expect("GET", f"/api/artifacts?{query}", None, 200)
            if a["sha256"] == entry["sha256"]
        ]
        if found:
            artifact_ids[entry["version"]] = found[0]["id"]
            continue
        created = api.expect(
            "POST",
            "/api/artifacts",
            {
                "tenant": tenant,
                "uri": f"{artifact_url}/{entry['file']}",
                "sha256": entry["sha256"],
                "size": entry["size"],
                "version": entry["version"],
                "type": "demo",
                "metadata": {"source": "compose demo profile"},
            },
            201,
        )
        artifact_ids[entry["version"]] = created["id"]
        log.info("registered artifact %s (%s)", entry["version"], created["id"])

    policies = api.expect("GET", "/api/policies", None, 200)
    policy = next((p for p in policies if p["name"] == POLICY_NAME), None)
    if policy is None:
        policy = api.expect(
            "POST",
            "/api/policies",
            {
                "tenant": tenant,
                "name": POLICY_NAME,
                "require_ok": True,
                "skip_offline": True,
                "grace_seconds": 10,
                "min_success_ratio": 1.0,
                "max_failures_per_wave": 0,
            },
            201,
        )

    label_query = urllib.parse.urlencode({"label": selector})

    def claimed() -> bool:
        found = api.expect("GET", f"/api/devices?limit=1000&{label_query}", None, 200)
        log.info("%d of %d demo devices claimed", len(found), devices)
        return len(found) >= devices

    poll("the demo devices to claim", claimed, timeout)

    name = f"demo {ROLLOUT_VERSION}"
    rollouts = api.expect("GET", "/api/rollouts?limit=1000", None, 200)
    rollout = next((r for r in rollouts if r.get("name") == name), None)
    if rollout is None:
        rollout = api.expect(
            "POST",
            "/api/rollouts",
            {
                "tenant": tenant,
                "name": name,
                "artifact_id": artifact_ids[ROLLOUT_VERSION],
                "selector": selector,
                "channel": "stable",
                "waves": waves,
                "policy_id": policy["id"],
            },
            201,
        )
        log.info("created rollout %s", rollout["id"])
    if rollout["status"] == "draft":
        api.expect("POST", f"/api/rollouts/{rollout['id']}:start", None, 202)
        log.info("started rollout %s", rollout["id"])
    log.info(
        "demo ready: open %s/ui (token %s); try the bad release %s with a new rollout",
        "http://localhost:8080",
        "XDP47_AGENT_TOKEN",
        artifact_ids["2.0.0-bad"],
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "serve":
        serve()
    elif command == "seed":
        seed()
    else:
        raise SystemExit("usage: demo.py serve|seed")


if __name__ == "__main__":
    main()
