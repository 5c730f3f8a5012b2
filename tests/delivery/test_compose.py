"""compose/compose.yaml is a valid compose file with the stack's essentials.

Validated offline against the compose specification (check-jsonschema's vendored
schema), then checked for what the stack promises: pinned images, healthchecks,
start order through depends_on conditions, two schedulers, and a demo profile
whose devices each share one volume between agent and demo app.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.delivery.support import ROOT, check_jsonschema, image_tag, load_yaml

COMPOSE = ROOT / "compose" / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def resolve(value: str) -> str:
    """Substitute ${VAR:-default} with its default, as compose does without .env."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def test_valid_against_the_compose_specification() -> None:
    result = check_jsonschema("--builtin-schema", "vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_wrong_condition(tmp_path: Path) -> None:
    """The check above would fail on a typo in a depends_on condition."""
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        COMPOSE.read_text().replace(
            "condition: service_completed_successfully", "condition: service_done", 1
        )
    )
    result = check_jsonschema("--builtin-schema", "vendor.compose-spec", broken)
    assert result.returncode != 0


def test_no_version_key_and_every_image_pinned(compose: dict[str, Any]) -> None:
    assert "version" not in compose
    for name, service in compose["services"].items():
        image = resolve(service["image"])
        tag = image_tag(image)
        assert tag, f"{name}: {image} is untagged"
        assert tag != "latest", f"{name}: {image}"


def test_infrastructure_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["rabbitmq"]["image"] == "rabbitmq:3.13-management"
    assert services["rabbitmq"]["healthcheck"]["test"][1:] == [
        "rabbitmq-diagnostics",
        "-q",
        "ping",
    ]


def test_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["entrypoint"] == ["xdp47-migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == (
        "service_healthy"
    )
    for name in ("api", "ingest", "scheduler"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["rabbitmq"]["condition"] == "service_healthy"
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
    for name in ("api", "ingest"):
        assert services["gateway"]["depends_on"][name]["condition"] == "service_healthy"


def test_two_schedulers(compose: dict[str, Any]) -> None:
    scheduler = compose["services"]["scheduler"]
    assert scheduler["deploy"]["replicas"] == 2
    assert "container_name" not in scheduler


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if service.get("restart") == "no" or name.startswith("agent-"):
            continue  # one-shot jobs; agents: see services/agent/Dockerfile
        assert "healthcheck" in service or name.startswith("demoapp-"), name


def test_demo_profile_devices_share_a_volume_per_device(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    agents = sorted(n for n in services if n.startswith("agent-"))
    assert len(agents) >= 3
    volumes: set[str] = set()
    for agent in agents:
        n = agent.removeprefix("agent-")
        app = services[f"demoapp-{n}"]
        assert services[agent]["profiles"] == ["demo"] == app["profiles"]
        (agent_volume,) = services[agent]["volumes"]
        (app_volume,) = app["volumes"]
        assert agent_volume == f"device-{n}:/var/lib/xdp47"
        assert app_volume.startswith(f"device-{n}:/var/lib/xdp47")
        volumes.add(agent_volume)
        env = services[agent]["environment"]
        assert env["XDP47_METRICS_URL"] == f"http://demoapp-{n}:9100/metrics"
        assert env["XDP47_CONTROL_URL"] == "http://gateway:8080"
    assert len(volumes) == len(agents), "each device has its own state volume"
    seed = services["demo-seed"]
    assert seed["profiles"] == ["demo"]
    assert seed["entrypoint"][-1] == "seed"


def test_gateway_routes_device_paths_to_ingest() -> None:
    conf = (ROOT / "compose" / "gateway" / "default.conf.template").read_text()
    match = re.search(r"location ~ (\S+) \{\s*proxy_pass \$ingest_upstream;", conf)
    assert match, "no regex location proxying to ingest"
    route = re.compile(match[1])
    assert route.match("/api/devices/pos-12/heartbeat")
    assert route.match("/api/devices/pos-12/desired")
    assert not route.match("/api/devices/claim")
    assert re.search(r"location / \{\s*proxy_pass \$api_upstream;", conf)


def test_env_example_documents_every_variable(compose: dict[str, Any]) -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    example = (ROOT / "compose" / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z0-9_]+)=", example, re.M))
    assert used == documented
