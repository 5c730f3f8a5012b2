"""values.schema.json rejects wrong values, with a message naming the value.

Helm validates user values against the schema on install, upgrade, template and
lint; these tests call the same validation (helm-python-sdk) and also check that a
rejected value stops the render itself.
"""

from __future__ import annotations

import copy
from typing import Any

import helm_python
import pytest

from tests.delivery.support import CI_VALUES, load_yaml, render, validate_schema

BASE: dict[str, Any] = load_yaml(CI_VALUES[0])


def with_(path: str, value: Any) -> dict[str, Any]:
    """BASE with ``path`` (dotted) set to ``value``."""
    values = copy.deepcopy(BASE)
    *parents, leaf = path.split(".")
    node = values
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return values


@pytest.mark.parametrize("values", [BASE, *(load_yaml(p) for p in CI_VALUES)])
def test_ci_values_pass(values: dict[str, Any]) -> None:
    validate_schema(values)


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("api.replicaCount", "two", "replicaCount"),
        ("api.replicaCount", -1, "replicaCount"),
        ("api.replicaCunt", 2, "replicaCunt"),
        ("bogus", True, "bogus"),
        ("ingest.image.tag", "latest", "tag"),
        ("scheduler.image.pullPolicy", "Sometimes", "pullPolicy"),
        ("ingest.autoscaling.targetCPUUtilizationPercentage", 150, "target"),
        ("scheduler.autoscaling.enabled", "yes", "enabled"),
        ("api.livenessProbe.httpGet.path", "/healthz", "path"),
        ("api.readinessProbe.httpGet.path", "/livez", "path"),
        ("api.securityContext.allowPrivilegeEscalation", True, "allowPrivilege"),
        ("api.podSecurityContext.runAsNonRoot", False, "runAsNonRoot"),
        ("api.resources.requests.cpu", "lots", "cpu"),
        ("api.service.type", "ExternalName", "type"),
        ("config.XDP47_DB_URL", "postgresql://x@y/z", "XDP47_DB_URL"),
        ("config.XDP47_ENV", "prod", "XDP47_ENV"),
        ("config.not_an_env_name", "x", "not_an_env_name"),
        ("postgresql.url", "mysql://x@y/z", "url"),
        ("rabbitmq.url", "", "rabbitmq"),
        ("ingress.host", "Not A Host", "host"),
        ("serviceMonitor.interval", "often", "interval"),
        ("demoFleet.labels", "fleet", "labels"),
    ],
)
def test_wrong_value_is_rejected(path: str, value: Any, named: str) -> None:
    with pytest.raises(helm_python.errors.HelmValuesError) as excinfo:
        validate_schema(with_(path, value))
    # The message names the offending key, so an operator can find it.
    assert named in str(excinfo.value), str(excinfo.value)


def test_demo_fleet_needs_an_agent_token() -> None:
    with pytest.raises(helm_python.errors.HelmValuesError):
        validate_schema(with_("demoFleet.enabled", True))
    values = with_("demoFleet.enabled", True)
    values["agentToken"] = {"existingSecret": "fleet-token"}
    validate_schema(values)


def test_dev_token_needs_development_mode() -> None:
    values = with_("config.XDP47_DEV_TOKEN_ENABLED", "true")
    values["agentToken"] = {"value": "devtoken123"}
    with pytest.raises(helm_python.errors.HelmValuesError):
        validate_schema(values)
    values["config"]["XDP47_ENV"] = "development"
    validate_schema(values)


def test_rejected_values_stop_the_render() -> None:
    with pytest.raises(helm_python.errors.HelmError, match="replicaCount"):
        render(with_("api.replicaCount", "two"))


def test_a_missing_database_stops_the_render() -> None:
    with pytest.raises(helm_python.errors.HelmError, match="postgresql"):
        render({"rabbitmq": BASE["rabbitmq"]})
