"""The CLI against a live API: login, tenants, tokens, devices, artifacts,
policies and rollouts, with ``-o json`` parsed at each step."""

from __future__ import annotations

import hashlib
import json
import stat
import uuid
from pathlib import Path

import httpx
import pytest

from tests.integration.cli.conftest import LiveApi

# Each step runs the xdp47 script as a process (seconds each on a loaded
# machine), and a test takes a few dozen steps.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_login_then_every_area(
    live_api: LiveApi, xdp47, config_file: Path, tmp_path: Path
) -> None:
    login = xdp47(
        "login",
        "--url",
        live_api.url,
        "--token",
        live_api.token,
        "--tenant",
        live_api.tenant,
    )
    assert login.code == 0, login.stderr
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    shown = json.loads(xdp47("context", "show", "-o", "json").stdout)
    assert shown["url"] == live_api.url
    assert live_api.token not in json.dumps(shown)

    # Tenants: the dev token is a platform operator.
    other = f"cli-{uuid.uuid4().hex[:8]}"
    assert xdp47("tenants", "create", other, "--name", "Other").code == 0
    tenants = json.loads(xdp47("tenants", "ls", "--all", "-o", "json").stdout)
    assert {other, live_api.tenant} <= {t["id"] for t in tenants}
    taken = xdp47("tenants", "create", other)
    assert taken.code == 1
    assert taken.stderr == f"error: 409 id: tenant '{other}' already exists\n"

    # Tokens: the secret once, then listed without it; revoke.
    minted = json.loads(
        xdp47(
            "tokens", "create", "ops", "-s", "tokens:read,artifacts:read", "-o", "json"
        ).stdout
    )
    assert minted["token"].startswith("xdp47t_")
    listed = json.loads(xdp47("tokens", "ls", "-o", "json").stdout)
    assert minted["id"] in {t["id"] for t in listed}
    assert all("token" not in t for t in listed)

    # A second context with the minted token learns its tenant from the API.
    second = xdp47(
        "login", "--url", live_api.url, "--token", minted["token"], "--name", "ops"
    )
    assert second.code == 0, second.stderr
    contexts = json.loads(xdp47("context", "ls", "-o", "json").stdout)
    assert {c["name"]: c["tenant"] for c in contexts}["ops"] == live_api.tenant
    forbidden = xdp47("policies", "ls")
    assert forbidden.code == 1
    assert forbidden.stderr.startswith("error: 403 ")
    assert xdp47("context", "use", "default").code == 0
    revoked = json.loads(xdp47("tokens", "revoke", minted["id"], "-o", "json").stdout)
    assert revoked["revoked_at"] is not None
    assert xdp47("--context", "ops", "artifacts", "ls").stderr.startswith("error: 401 ")

    # Artifacts: from a URI, and from a file uploaded to the API.
    digest = hashlib.sha256(b"v1").hexdigest()
    by_uri = xdp47(
        "artifacts",
        "create",
        "--uri",
        "https://cdn.example/app-1.bin",
        "--sha256",
        digest,
        "--version",
        "1.0.0",
        "-o",
        "json",
    )
    assert by_uri.code == 0, by_uri.stderr
    artifact = json.loads(by_uri.stdout)
    assert artifact["sha256"] == digest
    release = tmp_path / "app-2.bin"
    release.write_bytes(b"release two\n" * 500)
    uploaded = xdp47(
        "artifacts", "create", "-f", str(release), "--version", "2.0.0", "-o", "json"
    )
    assert uploaded.code == 0, uploaded.stderr
    up = json.loads(uploaded.stdout)
    assert up["sha256"] == hashlib.sha256(release.read_bytes()).hexdigest()
    assert up["size"] == release.stat().st_size
    content = httpx.get(
        up["uri"], headers={"Authorization": f"Bearer {live_api.token}"}
    )
    assert content.content == release.read_bytes()
    bad = xdp47(
        "artifacts", "create", "--uri", "https://x.example/a", "--sha256", "nothex"
    )
    assert bad.code == 1
    assert bad.stderr.startswith("error: 422 body.sha256: ")
    assert bad.stderr.count("\n") == 1
    got = json.loads(xdp47("artifacts", "get", artifact["id"], "-o", "json").stdout)
    assert got == artifact

    # Devices: claimed through the API, filtered by the CLI.
    for n, region in enumerate(["eu", "eu", "us"]):
        claimed = httpx.post(
            f"{live_api.url}/api/devices/claim",
            headers={"Authorization": f"Bearer {live_api.token}"},
            json={
                "tenant": live_api.tenant,
                "device_id": f"cli-{n}",
                "labels": {"region": region},
            },
        )
        assert claimed.status_code in (200, 201), claimed.text
    eu = json.loads(xdp47("devices", "ls", "-l", "region=eu", "-o", "json").stdout)
    assert sorted(d["id"] for d in eu) == ["cli-0", "cli-1"]
    paged = json.loads(xdp47("devices", "ls", "--limit", "2", "-o", "json").stdout)
    assert len(paged) == 2
    assert json.loads(xdp47("devices", "get", "cli-2", "-o", "json").stdout)[
        "labels"
    ] == {"region": "us"}

    # Policies and rollouts.
    policy = json.loads(
        xdp47(
            "policies",
            "create",
            "strict",
            "--min-success-ratio",
            "0.9",
            "--no-skip-offline",
            "-o",
            "json",
        ).stdout
    )
    assert (policy["min_success_ratio"], policy["skip_offline"]) == (0.9, False)
    assert policy["id"] in {
        p["id"] for p in json.loads(xdp47("policies", "ls", "-o", "json").stdout)
    }
    created = xdp47(
        "rollouts",
        "create",
        "--artifact",
        artifact["id"],
        "--percentages",
        "50,50",
        "--policy",
        policy["id"],
        "--selector",
        "region=eu",
        "--name",
        "cli",
        "-o",
        "json",
    )
    assert created.code == 0, created.stderr
    rollout = json.loads(created.stdout)
    assert (rollout["status"], rollout["waves"], rollout["selector"]) == (
        "draft",
        2,
        {"region": "eu"},
    )

    plan = xdp47("rollouts", "plan", rollout["id"], "-o", "json")
    if plan.code == 0:  # the plan endpoint is being added to the API
        assert json.loads(plan.stdout)["rollout_id"] == rollout["id"]
    else:
        assert "this API has no plan endpoint" in plan.stderr
        assert plan.stderr.count("\n") == 1

    started = xdp47("rollouts", "start", rollout["id"], "-o", "json")
    assert started.code == 0, started.stderr
    assert json.loads(started.stdout)["id"] == rollout["id"]
    listed_rollouts = json.loads(xdp47("rollouts", "ls", "--all", "-o", "json").stdout)
    assert rollout["id"] in {r["id"] for r in listed_rollouts}
    assert (
        json.loads(xdp47("rollouts", "runs", rollout["id"], "-o", "json").stdout) == []
    )
    table = xdp47("rollouts", "ls")
    assert table.code == 0
    assert rollout["id"] in table.stdout


def test_unreachable_api_is_one_line_naming_the_url(xdp47) -> None:
    result = xdp47(
        "--url", "http://127.0.0.1:9", "--token", "xdp47t_x", "devices", "ls"
    )
    assert result.code == 1
    assert result.stderr.startswith(
        "error: cannot connect to the API at http://127.0.0.1:9"
    )
    assert result.stderr.count("\n") == 1
