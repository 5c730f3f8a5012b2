"""The GitHub Actions workflows are valid and do what delivery needs.

Validated offline against the GitHub workflow schema (check-jsonschema's vendored
copy), then checked: CI runs the same command as .ci/run against PostgreSQL and
RabbitMQ service containers and runs bandit; a tag builds and pushes one image
per service to GHCR and packages the chart. Actions are pinned by version.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.delivery.support import ROOT, check_jsonschema, load_yaml

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SERVICES = {"api", "ingest", "scheduler", "agent", "demoapp"}


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_valid_against_the_github_workflow_schema(path: Path) -> None:
    result = check_jsonschema("--builtin-schema", "vendor.github-workflows", path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned(path: Path) -> None:
    for step in steps(load_yaml(path)):
        if "uses" in step:
            assert re.fullmatch(
                r"[\w.-]+/[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", step["uses"]
            ), step["uses"]


def test_ci_runs_the_ci_command_with_real_services() -> None:
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
    workflow = load_yaml(ROOT / ".github" / "workflows" / "ci.yml")
    test = workflow["jobs"]["test"]
    assert {"postgres", "rabbitmq"} <= set(test["services"])
    assert test["services"]["rabbitmq"]["image"].startswith("rabbitmq:3.13")
    assert {"XDP47_TEST_DB_URL", "XDP47_TEST_AMQP_URL"} <= set(test["env"])
    assert any(s.get("run", "").strip() == "scripts/test" for s in test["steps"])
    runs = " ".join(s.get("run", "") for s in steps(workflow))
    assert "bandit -c pyproject.toml" in runs


def test_release_pushes_every_image_and_packages_the_chart() -> None:
    workflow = load_yaml(ROOT / ".github" / "workflows" / "release.yml")
    # PyYAML reads the key "on" as True (YAML 1.1).
    trigger = workflow.get("on", workflow.get(True))
    assert trigger["push"]["tags"]
    images = workflow["jobs"]["images"]
    assert set(images["strategy"]["matrix"]["service"]) == SERVICES
    (build,) = (
        s for s in images["steps"] if s["uses"].startswith("docker/build-push-action@")
    )
    assert build["with"]["push"] is True
    assert build["with"]["file"] == "services/${{ matrix.service }}/Dockerfile"
    (meta,) = (s for s in images["steps"] if s.get("id") == "meta")
    assert meta["with"]["images"].startswith("ghcr.io/")
    assert "latest=false" in meta["with"]["flavor"]
    chart_runs = " ".join(s.get("run", "") for s in workflow["jobs"]["chart"]["steps"])
    assert "helm package helm/xdp47" in chart_runs
