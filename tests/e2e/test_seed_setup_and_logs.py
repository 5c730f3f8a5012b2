"""The control plane as an operator meets it, with real processes:

- an agent given only the seed's variables (no ``XDP47_INGEST_URL``) comes
  online, because the claim answer names ingest; it keeps that address across a
  restart; against an api that announces nothing it logs one line saying what
  to set;
- no secret minted here (API tokens valid, revoked and made up, device
  credentials valid and made up, the dev token, a session cookie) appears in
  any log of any process, whatever URL or header it was sent in.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import pytest

from tests.support.control_plane import ControlPlane
from tests.support.processes import (
    ManagedProcess,
    ProcessGroup,
    clean_env,
    free_port,
    wait_until,
)
from xdp47_common.tokens import SecretKind, new_secret

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# Every secret this module mints or sends; the last test greps every log for them.
MINTED: list[str] = []


def seed_agent(
    group: ProcessGroup, plane: ControlPlane, root: Path, device_id: str, api_url: str
) -> ManagedProcess:
    """An agent configured with the seed's variables only."""
    state_dir = root / device_id
    state_dir.mkdir(parents=True, exist_ok=True)
    return group.start(
        f"agent-{device_id}",
        "xdp47-agent",
        clean_env(
            XDP47_CONTROL_URL=api_url,
            XDP47_TENANT=plane.tenant,
            XDP47_DEVICE_LABELS=f"fleet={device_id},idx=0",
            XDP47_AGENT_TOKEN=plane.token,
            XDP47_STATE_DIR=str(state_dir),
            XDP47_DEVICE_ID=device_id,
        ),
        wait=False,
    )


def device(plane: ControlPlane, device_id: str) -> dict[str, object]:
    r = httpx.get(f"{plane.api_url}/api/devices/{device_id}", headers=plane.auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_an_agent_with_the_seed_variables_comes_online(
    e2e_plane: ControlPlane, e2e_group: ProcessGroup, e2e_dir: Path
):
    MINTED.append(e2e_plane.token)
    agent = seed_agent(
        e2e_group, e2e_plane, e2e_dir / "seed", "seed-0", e2e_plane.api_url
    )

    def online() -> None:
        assert agent.running, agent.log_tail()
        row = device(e2e_plane, "seed-0")
        assert row["status"] == "online", row
        assert row["labels"] == {"fleet": "seed-0", "idx": "0"}

    wait_until(online, within=60)
    stored = json.loads((e2e_dir / "seed" / "seed-0" / "credential").read_text())
    assert stored["ingest_url"] == e2e_plane.ingest_url
    MINTED.append(stored["credential"])
    # Every HTTP failure the agent logs reads "HTTP <status>"; a bare "404"
    # could be part of a port number in the log.
    assert "HTTP 404" not in agent.log_tail(200)

    # A restarted agent keeps heartbeating to ingest without claiming again.
    seq = int(str(device(e2e_plane, "seed-0")["last_seq"]))
    restarted = e2e_group.restart(agent, wait=False)

    def heartbeating_again() -> None:
        assert restarted.running, restarted.log_tail()
        assert int(str(device(e2e_plane, "seed-0")["last_seq"])) > seq

    wait_until(heartbeating_again, within=60)
    again = json.loads((e2e_dir / "seed" / "seed-0" / "credential").read_text())
    assert again["credential"] == stored["credential"]


def test_an_agent_told_nothing_says_what_to_set(
    e2e_plane: ControlPlane, e2e_group: ProcessGroup, e2e_dir: Path
):
    """An api without XDP47_INGEST_PUBLIC_URL (and no gateway): the agent's
    heartbeats reach the api, which has no such route."""
    port = free_port()
    env = {k: v for k, v in e2e_plane.api.env.items() if k != "XDP47_INGEST_PUBLIC_URL"}
    env["XDP47_LISTEN_ADDR"] = f"127.0.0.1:{port}"
    bare_url = f"http://127.0.0.1:{port}"
    e2e_group.start("api-bare", "xdp47-api", env, ready_url=f"{bare_url}/readyz")
    agent = seed_agent(e2e_group, e2e_plane, e2e_dir / "seed", "seed-bare", bare_url)

    def hint_logged() -> None:
        assert agent.running, agent.log_tail()
        tail = agent.log_tail(200).splitlines()
        lines = [line for line in tail if "ERROR" in line and "HTTP 404" in line]
        assert lines, agent.log_tail()
        assert "set XDP47_INGEST_URL on the agent" in lines[0]
        assert "XDP47_INGEST_PUBLIC_URL on the api" in lines[0]

    wait_until(hint_logged, within=60)
    assert device(e2e_plane, "seed-bare")["status"] != "online"
    stored = json.loads((e2e_dir / "seed" / "seed-bare" / "credential").read_text())
    assert stored["ingest_url"] is None
    MINTED.append(stored["credential"])


def _mint_token(plane: ControlPlane, name: str) -> dict[str, str]:
    r = httpx.post(
        f"{plane.api_url}/api/tokens",
        headers=plane.auth,
        json={"name": name, "scopes": ["devices:read"]},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_no_minted_secret_reaches_any_log(
    e2e_plane: ControlPlane, e2e_group: ProcessGroup, e2e_dir: Path
):
    plane = e2e_plane
    valid = _mint_token(plane, "logs-valid")["token"]
    revoked = _mint_token(plane, "logs-revoked")
    r = httpx.post(
        f"{plane.api_url}/api/tokens/{revoked['id']}:revoke", headers=plane.auth
    )
    assert r.status_code == 200, r.text
    made_up = new_secret(SecretKind.API_TOKEN)
    claim = httpx.post(
        f"{plane.api_url}/api/devices/claim",
        headers=plane.auth,
        json={"tenant": plane.tenant, "device_id": "logs-0"},
    )
    assert claim.status_code == 201, claim.text
    credential = claim.json()["credential"]
    fake_credential = new_secret(SecretKind.DEVICE_CREDENTIAL)
    cookie = secrets.token_urlsafe(24)
    MINTED.extend(
        [plane.token, valid, revoked["token"], made_up, credential, fake_credential]
    )
    MINTED.append(cookie)

    api, ingest = plane.api_url, plane.ingest_url
    heartbeat = f"{ingest}/api/devices/logs-0/heartbeat"
    body = {"seq": 1, "health": "ok"}
    with httpx.Client(timeout=10) as http:
        for token in (valid, revoked["token"], made_up, plane.token):
            for name in ("access_token", "token", "api_key"):
                http.get(f"{api}/api/devices?limit=1&{name}={token}")
            http.get(f"{api}/api/devices", headers={"Authorization": f"Bearer {token}"})
            http.get(
                f"{api}/api/devices?access_token={token}",
                headers={"Authorization": f"Bearer {token}"},
            )
            http.get(f"{api}/api/no-such-route?token={token}")
            http.get(f"{api}/ui/devices?access_token={token}")
            http.get(f"{api}/api/devices", auth=(plane.tenant, token))
            http.post(
                f"{api}/api/devices/claim?token={token}",
                headers={"Authorization": f"Bearer {token}"},
                content=b"{not json",
            )
            http.get(f"{plane.scheduler_url}/readyz?token={token}")
        http.get(f"{api}/ui/devices", headers={"Cookie": f"xdp47_session={cookie}"})
        for cred in (credential, fake_credential):
            auth = {"Authorization": f"Bearer {cred}"}
            http.post(heartbeat, headers=auth, json=body)
            http.post(f"{heartbeat}?access_token={cred}", headers=auth, json=body)
            http.post(f"{heartbeat}?token={cred}", content=b"[", headers=auth)
            http.get(f"{api}/api/artifacts/x/content?token={cred}", headers=auth)

    logs = sorted((e2e_dir / "logs").glob("*.log"))

    def refusals_logged() -> None:
        text = (e2e_dir / "logs" / "api.log").read_text()
        # The access log did record these requests, with the secret masked.
        assert "/api/devices?limit=1&access_token=[redacted]" in text
        assert "/api/no-such-route?token=[redacted]" in text

    wait_until(refusals_logged, within=30)
    assert len(logs) >= 4, logs  # api, ingest, scheduler, agents …
    leaks = [
        (path.name, secret[:12])
        for path in logs
        for secret in MINTED
        if secret in path.read_text(errors="replace")
    ]
    assert leaks == []
