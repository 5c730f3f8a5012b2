"""The CLI at a person's terminal, against a live API: names instead of UUIDs
(tenant-scoped), unique policy names, ``rollouts ls`` with versions and policy
names, plain tables in a pipe, ``-o json|yaml|wide``, help without ``<bool>``,
completion scripts every shell accepts, and a device's history."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from tests.integration.cli.conftest import LiveApi, Ran, cli_env
from tests.integration.cli.scripted import Run, Script, apply
from tests.support.processes import BIN

# Each step runs the xdp47 script as a process (seconds each on a loaded
# machine), and a test takes a few dozen steps.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture
def logged_in(xdp47, live_api: LiveApi):
    login = xdp47(
        "login", "--url", live_api.url, "--token", live_api.token,
        "--tenant", live_api.tenant,
    )  # fmt: skip
    assert login.code == 0, login.stderr
    return xdp47


def _json(ran: Ran) -> Any:
    assert ran.code == 0, ran.stderr
    return json.loads(ran.stdout)


def _artifact(xdp47, version: str, seed: str) -> dict[str, Any]:
    created: dict[str, Any] = _json(
        xdp47(
            "artifacts", "create", "--uri", f"https://cdn.example/{seed}.bin",
            "--sha256", hashlib.sha256(seed.encode()).hexdigest(),
            "--version", version, "-o", "json",
        )
    )  # fmt: skip
    return created


def _other_tenant(live_api: LiveApi) -> tuple[str, httpx.Client]:
    """A second tenant and a client with a token of its own."""
    other = f"cli-{uuid.uuid4().hex[:8]}"
    admin = {"Authorization": f"Bearer {live_api.token}"}
    made = httpx.post(f"{live_api.url}/api/tenants", headers=admin, json={"id": other})
    assert made.status_code == 201, made.text
    minted = httpx.post(
        f"{live_api.url}/api/tokens",
        headers=admin,
        json={
            "tenant": other,
            "name": "other",
            "scopes": ["artifacts:write", "policies:write"],
        },
    )
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]
    return other, httpx.Client(
        base_url=live_api.url, headers={"Authorization": f"Bearer {token}"}
    )


def test_artifacts_policies_and_rollouts_by_name(logged_in, live_api: LiveApi) -> None:
    xdp47 = logged_in
    tag = uuid.uuid4().hex[:6]
    version = f"4.0.{tag}"
    artifact = _artifact(xdp47, version, f"a-{tag}")
    assert _json(xdp47("artifacts", "get", version, "-o", "json")) == artifact

    policy_name = f"careful-{tag}"
    policy = _json(
        xdp47("policies", "create", policy_name, "--grace-seconds", "5", "-o", "json")
    )
    again = xdp47("policies", "create", policy_name)
    assert again.code == 1
    assert again.stderr == (
        f"error: 409 name: a policy named '{policy_name}' already exists in this "
        "tenant\n"
    )
    assert _json(xdp47("policies", "get", policy_name, "-o", "json")) == policy

    rollouts = {}
    for region in ("eu", "us"):
        rollouts[region] = _json(
            xdp47(
                "rollouts", "create", "--artifact", version, "--policy", policy_name,
                "--name", f"{tag}-{region}", "-l", f"region={region}", "-o", "json",
            )
        )  # fmt: skip
    assert {r["artifact_id"] for r in rollouts.values()} == {artifact["id"]}
    assert {r["policy_id"] for r in rollouts.values()} == {policy["id"]}

    # A unique prefix names one rollout; an ambiguous one lists the candidates.
    got = _json(xdp47("rollouts", "get", f"{tag}-e", "-o", "json"))
    assert got["id"] == rollouts["eu"]["id"]
    ambiguous = xdp47("rollouts", "plan", tag)
    assert ambiguous.code == 1
    assert ambiguous.stderr.startswith(
        f"error: 2 rollouts have names starting with '{tag}'; give more of the name"
    )
    for r in rollouts.values():
        assert f"{r['name']} ({r['id']})" in ambiguous.stderr
    assert xdp47("rollouts", "get", f"no-such-{tag}").stderr == (
        f"error: no rollout whose name starts with 'no-such-{tag}' (and it is not "
        "an id); see `xdp47 rollouts ls`\n"
    )

    # A version two artifacts share is refused, naming both.
    twins = [_artifact(xdp47, f"5.0.{tag}", f"t{n}-{tag}") for n in (1, 2)]
    shared = xdp47("rollouts", "create", "--artifact", f"5.0.{tag}")
    assert shared.code == 1
    assert shared.stderr.startswith(f"error: 2 artifacts have version '5.0.{tag}'")
    assert all(t["id"] in shared.stderr for t in twins)


def test_names_of_another_tenant_are_not_found(logged_in, live_api: LiveApi) -> None:
    xdp47 = logged_in
    tag = uuid.uuid4().hex[:6]
    tenant, other = _other_tenant(live_api)
    with other:
        theirs = other.post(
            "/api/policies", json={"tenant": tenant, "name": f"theirs-{tag}"}
        )
        assert theirs.status_code == 201, theirs.text
        art = other.post(
            "/api/artifacts",
            json={
                "tenant": tenant,
                "uri": "https://cdn.example/o.bin",
                "sha256": hashlib.sha256(b"o").hexdigest(),
                "version": f"7.7.{tag}",
            },
        )
        assert art.status_code == 201, art.text
    missing = xdp47("rollouts", "create", "--artifact", f"7.7.{tag}")
    assert missing.code == 1
    assert missing.stderr.startswith(f"error: no artifact with version '7.7.{tag}'")
    assert xdp47("policies", "get", f"theirs-{tag}").stderr.startswith(
        f"error: no policy named 'theirs-{tag}'"
    )
    assert xdp47("artifacts", "get", art.json()["id"]).stderr.startswith("error: 404 ")
    # Our tenant may use the same policy name: names are unique per tenant.
    assert xdp47("policies", "create", f"theirs-{tag}").code == 0


def test_rollouts_ls_shows_versions_and_policy_names_in_every_format(
    logged_in,
) -> None:
    xdp47 = logged_in
    tag = uuid.uuid4().hex[:6]
    artifact = _artifact(xdp47, f"6.0.{tag}", f"ls-{tag}")
    policy = _json(xdp47("policies", "create", f"steady-{tag}", "-o", "json"))
    long_name = f"{tag}-" + "a-rollout-name-longer-than-any-terminal-" * 3
    rollout = _json(
        xdp47(
            "rollouts", "create", "--artifact", artifact["id"], "--policy",
            policy["id"], "--name", long_name, "-o", "json",
        )
    )  # fmt: skip

    table = xdp47("rollouts", "ls", "--all")
    assert table.code == 0, table.stderr
    lines = table.stdout.splitlines()
    header = lines[0].split()
    assert header[:4] == ["NAME", "ID", "STATUS", "WAVE"]
    assert {"VERSION", "POLICY"} <= set(header)
    assert "ARTIFACT" not in table.stdout
    row = next(line for line in lines if line.startswith(long_name))
    # One line, whole values, versions and names instead of UUIDs.
    assert row.split()[:3] == [long_name, rollout["id"], "draft"]
    assert f"6.0.{tag}" in row.split()
    assert f"steady-{tag}" in row.split()
    assert artifact["id"] not in table.stdout
    # Plain text: aligned on content, nothing padded out to a fixed width.
    assert all(line == line.rstrip() for line in lines)
    widest = max(len(line) for line in lines)
    assert widest != 250
    assert any(len(line) == widest for line in lines)

    wide = xdp47("rollouts", "ls", "--all", "-o", "wide")
    wide_row = next(line for line in wide.stdout.splitlines() if long_name in line)
    assert {artifact["id"], policy["id"], f"6.0.{tag}"} <= set(wide_row.split())

    as_json = _json(xdp47("rollouts", "ls", "--all", "-o", "json"))
    as_yaml = yaml.safe_load(xdp47("rollouts", "ls", "--all", "-o", "yaml").stdout)
    assert as_yaml == as_json
    mine = next(r for r in as_json if r["id"] == rollout["id"])
    assert mine == rollout  # the API's objects, unchanged
    got = yaml.safe_load(xdp47("rollouts", "get", long_name, "-o", "yaml").stdout)
    assert got["id"] == rollout["id"]
    assert "progress" in got

    record = xdp47("policies", "get", f"steady-{tag}")
    assert record.code == 0
    assert all(line == line.rstrip() for line in record.stdout.splitlines())
    # A record is "key  value" per line, the keys padded to the longest one.
    assert re.search(rf"^name +steady-{tag}$", record.stdout, re.MULTILINE)


def test_help_has_no_bool_metavars(xdp47) -> None:
    for args in (
        ("--help",),
        ("policies", "create", "--help"),
        ("rollouts", "ls", "--help"),
        ("artifacts", "delete", "--help"),
        ("demo", "--help"),
    ):
        shown = xdp47(*args)
        assert shown.code == 0, shown.stderr
        assert "<bool>" not in shown.stdout, args
    policy = xdp47("policies", "create", "--help").stdout
    assert "--require-ok / --no-require-ok  Count only healthy devices." in policy
    assert "--wave-deadline-seconds <int>" in policy  # never cut short
    version = xdp47("--version")
    assert version.code == 0
    assert version.stdout.startswith("xdp47 ")


def _complete_in_bash(config_file: Path, script: str, words: list[str]) -> list[str]:
    """Source the script in bash and ask its function to complete ``words``."""
    body = (
        f"{script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_xdp47_completion xdp47\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = cli_env(config_file) | {"PATH": f"{BIN}:/usr/bin:/bin"}
    done = subprocess.run(
        ["bash", "--norc", "-c", body],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.split()


def test_completion_scripts_work_in_each_shell(
    xdp47, config_file: Path, tmp_path: Path
) -> None:
    bash = xdp47("completion", "bash")
    assert bash.code == 0
    assert "complete -o default -F _xdp47_completion xdp47" in bash.stdout
    assert _complete_in_bash(config_file, bash.stdout, ["xdp47", "roll"]) == [
        "rollouts"
    ]
    assert _complete_in_bash(
        config_file, bash.stdout, ["xdp47", "rollouts", "ls", "-o", ""]
    ) == ["table", "wide", "json", "yaml"]
    assert "--show-completion" in xdp47("--help").stdout
    assert "--install-completion" in xdp47("--help").stdout
    for shell in ("zsh", "fish"):
        script = xdp47("completion", shell)
        assert script.code == 0
        assert "_XDP47_COMPLETE=complete_" + shell in script.stdout
        binary = shutil.which(shell)
        if binary is None:
            continue  # the syntax check needs the shell installed
        path = tmp_path / f"xdp47.{shell}"
        path.write_text(script.stdout)
        checked = subprocess.run(
            [binary, "-n", str(path)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stderr
    if shutil.which("fish"):
        env = cli_env(config_file) | {"PATH": f"{BIN}:/usr/bin:/bin"}
        fish = subprocess.run(
            ["fish", "--no-config", "-c",
             f"source {tmp_path / 'xdp47.fish'}; complete -C 'xdp47 roll'"],
            env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert fish.stdout.split("\t")[0] == "rollouts"


async def test_device_get_shows_its_rollout_history(
    logged_in, live_api: LiveApi, pool: asyncpg.Pool[Any]
) -> None:
    xdp47 = logged_in
    script = Script(
        "failed",
        1,
        [[("failed", "sha256_mismatch"), ("applied", None)], None],
        [Run(1, eligible=2, succeeded=1, failed=1)],
        size=2,
    )
    rid = await apply(pool, live_api, script)
    device = script.ids[1][0]
    # What the scheduler records when an attempt's target ends.
    await pool.execute(
        "INSERT INTO rollout_target_history (rollout_id, tenant, device_id, attempt,"
        " wave, state, reason, reason_detail, assigned_at, finished_at)"
        " VALUES ($1, $2, $3, 1, 1, 'failed', 'sha256_mismatch', 'got 00ff',"
        " now(), now())",
        rid,
        live_api.tenant,
        device,
    )
    shown = xdp47("devices", "get", device)
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    at = lines.index("ROLLOUT HISTORY")
    header, row = lines[at + 1].split(), lines[at + 2]
    assert header[:5] == ["ROLLOUT", "VERSION", "ATTEMPT", "WAVE", "STATE"]
    assert row.split()[0] == str(rid)
    assert "failed" in row.split()
    assert "sha256_mismatch: " in row
    assert "(got 00ff)" in row
    assert "LATEST HEARTBEATS" in lines
    as_yaml = yaml.safe_load(xdp47("devices", "get", device, "-o", "yaml").stdout)
    assert [h["rollout_id"] for h in as_yaml["rollout_history"]] == [str(rid)]
