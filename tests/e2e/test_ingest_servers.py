"""``XDP47_INGEST_SERVER``: ingest under uvicorn and under granian serves the same
device protocol end to end (a heartbeat answered 202 is persisted by the
scheduler, the desired state answers 200 then 304 by ETag, a bad credential is
the same JSON 401), logs structured JSON lines, and exits 0 on SIGTERM. An
unknown server is a one-line configuration error with the configuration exit
status."""

from __future__ import annotations

import json
import signal
import subprocess

import asyncpg
import httpx
import pytest

from tests.support.control_plane import ControlPlane, run_async
from tests.support.processes import (
    BIN,
    ProcessGroup,
    clean_env,
    free_port,
    wait_until,
)
from xdp47_common.cli import EXIT_CONFIG

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_an_unknown_server_is_a_one_line_config_error():
    done = subprocess.run(
        [str(BIN / "xdp47-ingest")],
        env=clean_env(
            XDP47_INGEST_SERVER="nginx",
            XDP47_DB_URL="postgresql://postgres@127.0.0.1:1/x",
            XDP47_AMQP_URL="amqp://guest:guest@127.0.0.1:1/",
            XDP47_AGENT_TOKEN="t",
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_CONFIG
    output = (done.stdout + done.stderr).strip()
    assert len(output.splitlines()) == 1, output
    assert output.startswith("xdp47-ingest: invalid XDP47_INGEST_SERVER: ")
    assert "'uvicorn' or 'granian'" in output


def _last_seq(db_url: str, tenant: str, device_id: str) -> int | None:
    async def read() -> int | None:
        conn = await asyncpg.connect(db_url)
        try:
            seq: int | None = await conn.fetchval(
                "SELECT last_seq FROM devices WHERE tenant = $1 AND id = $2",
                tenant,
                device_id,
            )
            return seq
        finally:
            await conn.close()

    return run_async(read())


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_each_server_serves_the_device_protocol_end_to_end(
    server: str, e2e_plane: ControlPlane, e2e_group: ProcessGroup
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ingest = e2e_group.start(
        f"ingest-{server}",
        "xdp47-ingest",
        e2e_plane.ingest.env
        | {"XDP47_LISTEN_ADDR": f"127.0.0.1:{port}", "XDP47_INGEST_SERVER": server},
        ready_url=f"{url}/readyz",
    )
    device_id = f"srv-{server}"
    claim = httpx.post(
        f"{e2e_plane.api_url}/api/devices/claim",
        headers=e2e_plane.auth,
        json={"tenant": e2e_plane.tenant, "device_id": device_id},
        timeout=30,
    )
    assert claim.status_code == 201, claim.text
    auth = {"Authorization": f"Bearer {claim.json()['credential']}"}
    with httpx.Client(base_url=url, timeout=30) as http:
        beat = http.post(
            f"/api/devices/{device_id}/heartbeat",
            headers=auth,
            json={"seq": 7, "health": "ok", "current_version": "1.0.0"},
        )
        assert beat.status_code == 202, beat.text
        assert beat.json()["action"] == "none"
        assert beat.headers["x-request-id"]
        # granian always names itself; uvicorn is told not to.
        assert beat.headers.get("server") == (None if server == "uvicorn" else server)
        desired = http.get(f"/api/devices/{device_id}/desired", headers=auth)
        assert desired.status_code == 200, desired.text
        again = http.get(
            f"/api/devices/{device_id}/desired",
            headers={**auth, "If-None-Match": desired.headers["etag"]},
        )
        assert again.status_code == 304
        refused = http.post(
            f"/api/devices/{device_id}/heartbeat",
            headers={"Authorization": "Bearer nope"},
            json={"seq": 8, "health": "ok"},
        )
        assert refused.status_code == 401
        assert refused.json() == {"detail": "malformed device credential"}
        assert refused.headers["www-authenticate"].startswith("Bearer")
        docs = http.get("/openapi.json")
        assert "/api/devices/{device_id}/heartbeat" in docs.json()["paths"]

    def persisted() -> None:
        seq = _last_seq(e2e_plane.db_url, e2e_plane.tenant, device_id)
        assert seq == 7, seq

    wait_until(persisted, within=30)
    # uvicorn ends by raising the SIGTERM it caught again once it has shut down.
    assert ingest.stop() in (0, -signal.SIGTERM), ingest.log_tail()
    records = []
    for line in ingest.log_path.read_text().splitlines():
        assert "\x1b[" not in line, line
        records.append(json.loads(line))
    assert {r["service"] for r in records} == {"ingest"}
    # The lifespan's shutdown ran to its end (the last batch published).
    assert "ingest stopped" in [r["event"] for r in records]
