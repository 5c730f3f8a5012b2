"""``xdp47 devices ls -l 'model in (k2,k3)'`` shows the devices and how many the
selector matches; ``devices count --by``; ``groups`` create, members, rm;
``artifacts create --compatible``."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.integration.cli.conftest import LiveApi

pytestmark = pytest.mark.integration


def _claim(live_api: LiveApi, device_id: str, labels: dict[str, str]) -> None:
    r = httpx.post(
        f"{live_api.url}/api/devices/claim",
        headers={"Authorization": f"Bearer {live_api.token}"},
        json={"tenant": live_api.tenant, "device_id": device_id, "labels": labels},
    )
    assert r.status_code in (200, 201), r.text


def test_devices_ls_count_and_groups(live_api: LiveApi, xdp47) -> None:
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
    run = uuid.uuid4().hex[:6]
    for i, model in enumerate(["k2", "k3", "k4", "k2"]):
        _claim(live_api, f"t{run}-{i}", {"model": model, "run": run})

    ls = xdp47("devices", "ls", "-l", f"run={run},model in (k2,k3)", "--limit", "2")
    assert ls.code == 0, ls.stderr
    assert ls.stdout.rstrip().endswith(
        f"2 shown; 3 devices match run={run},model in (k2,k3)"
    )
    bad = xdp47("devices", "ls", "-l", "model in (k2")
    assert bad.code != 0
    assert "'(' is not closed" in bad.stderr

    count = json.loads(
        xdp47(
            "devices", "count", "-l", f"run={run}", "--by", "label:model", "-o", "json"
        ).stdout
    )
    assert count["count"] == 4
    assert count["buckets"][0] == {"value": "k2", "count": 2}

    created = xdp47(
        "groups",
        "create",
        f"kiosks-{run}",
        "-l",
        f"run={run},model notin (k4)",
        "-o",
        "json",
    )
    assert created.code == 0, created.stderr
    group = json.loads(created.stdout)
    assert (group["kind"], group["count"]) == ("dynamic", 3)
    members = xdp47("groups", "members", group["id"])
    assert members.stdout.rstrip().endswith(f"3 devices in dynamic group kiosks-{run}")
    static = json.loads(
        xdp47(
            "groups", "create", f"pilot-{run}", "-d", f"t{run}-2", "-o", "json"
        ).stdout
    )
    assert static["count"] == 1
    assert xdp47("groups", "rm", static["id"]).code == 0

    art = xdp47(
        "artifacts",
        "create",
        "--uri",
        "https://example.com/x.tar",
        "--sha256",
        "ab" * 32,
        "--compatible",
        "arch=arm64",
        "--compatible",
        "device_type in (kiosk-k2,kiosk-k3)",
        "-o",
        "json",
    )
    assert art.code == 0, art.stderr
    assert json.loads(art.stdout)["compatible"] == {
        "arch": ["arm64"],
        "device_type": ["kiosk-k2", "kiosk-k3"],
    }
