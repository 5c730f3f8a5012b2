"""``xdp47 audit`` against a live API: the trail of what the CLI did, with its
actor, in every output format, filtered by rollout, action and time."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from tests.integration.cli.conftest import LiveApi
from tests.integration.cli.scripted import draft

pytestmark = pytest.mark.integration


async def test_the_cli_lists_the_trail_of_its_own_writes(
    live_api: LiveApi, xdp47
) -> None:
    login = xdp47(
        "login", "--url", live_api.url, "--token", live_api.token,
        "--tenant", live_api.tenant,
    )  # fmt: skip
    assert login.code == 0, login.stderr
    name = f"audit-{uuid.uuid4().hex[:8]}"
    assert xdp47("policies", "create", name).code == 0

    listed = xdp47("audit", "--action", "policy.created", "-o", "json")
    assert listed.code == 0, listed.stderr
    mine = [r for r in json.loads(listed.stdout) if r["detail"]["name"] == name]
    assert len(mine) == 1
    assert (mine[0]["actor"], mine[0]["actor_name"]) == ("dev-token", "dev-token")
    assert mine[0]["request_id"]

    table = xdp47("audit", "--action", "policy.*", "--limit", "5")
    assert table.code == 0, table.stderr
    header = table.stdout.splitlines()[0].split()
    assert header[:5] == ["AT", "ACTOR", "ACTION", "SUBJECT", "STATUS"]
    assert "policy.created" in table.stdout
    wide = xdp47("audit", "--action", "policy.created", "-o", "wide", "--limit", "1")
    assert "REQUEST ID" in wide.stdout
    assert mine[0]["request_id"] in wide.stdout

    rid = str(await draft(live_api, 1))
    of_rollout = xdp47("audit", "--rollout", rid, "-o", "yaml")
    assert of_rollout.code == 0, of_rollout.stderr
    assert [r["action"] for r in yaml.safe_load(of_rollout.stdout)] == [
        "rollout.created"
    ]
    later = xdp47("audit", "--since", "2999-01-01T00:00:00Z", "-o", "json")
    assert json.loads(later.stdout) == []

    naive = xdp47("audit", "--since", "2026-01-01T00:00:00")
    assert naive.code != 0
    assert "--since: give a time zone" in naive.stderr
    bad = xdp47("audit", "--until", "yesterday")
    assert bad.code != 0
    assert "--until: expected an ISO 8601 time" in bad.stderr
