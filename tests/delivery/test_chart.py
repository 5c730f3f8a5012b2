"""The Helm chart renders, lints and validates against Kubernetes' schemas.

Every ``helm/xdp47/ci/*-values.yaml`` (the default install and a production-like
one) and a demo variant are rendered without a helm binary (helm-python-sdk), linted
strictly, and every rendered object is validated in strict mode by
kubernetes-validate. ServiceMonitor is a CRD of the Prometheus Operator that
kubernetes-validate has no schema for; it is checked by shape here instead.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest

from tests.delivery.support import (
    CI_VALUES,
    documents,
    image_tag,
    lint,
    load_yaml,
    render,
)

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion is >=1.27, the
# schemas here start later) and the newest kubernetes-validate knows.
KUBE_VERSIONS = ("1.33.0", kubernetes_validate.latest_version())
NOT_IN_KUBERNETES_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
SERVICES = ("api", "ingest", "scheduler", "webhooks")

DEMO_VALUES: dict[str, Any] = {
    "postgresql": {"url": "postgresql://xdp47:pw@pg:5432/xdp47"},
    "rabbitmq": {"url": "amqp://xdp47:pw@mq:5672/"},
    "agentToken": {"value": "devtoken123"},
    "config": {
        "XDP47_ENV": "development",
        "XDP47_DEV_TOKEN_ENABLED": "true",
        "XDP47_DEV_TENANT": "demo",
    },
    "demoFleet": {"enabled": True, "replicaCount": 5},
    "ingress": {"enabled": True, "deviceHost": "devices.example.com"},
    "serviceMonitor": {"enabled": True},
}

VALUE_SETS = {path.name: load_yaml(path) for path in CI_VALUES} | {"demo": DEMO_VALUES}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    name = request.param
    return name, list(documents(render(VALUE_SETS[name])))


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def component(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def test_ci_values_files_exist() -> None:
    assert {p.name for p in CI_VALUES} >= {
        "default-values.yaml",
        "production-values.yaml",
    }


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_is_clean_in_strict_mode(name: str) -> None:
    report = lint(VALUE_SETS[name])
    # Severity: 1 info, 2 warning, 3 error. Strict lint turns warnings into errors.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [], report
    assert problems == []


def test_every_manifest_is_valid_kubernetes(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, docs = rendered
    assert docs, f"{name}: nothing rendered"
    checked = 0
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in NOT_IN_KUBERNETES_SCHEMAS:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(
                    f"{name}: {doc['kind']}/{doc['metadata']['name']} is invalid "
                    f"for Kubernetes {version}: {exc.message}"
                )
        checked += 1
    assert checked >= 10


def test_standard_labels_and_no_namespace(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    for doc in docs:
        labels = doc["metadata"]["labels"]
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/component",
            "app.kubernetes.io/part-of",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ):
            assert key in labels, f"{doc['kind']}/{doc['metadata']['name']}: {key}"
        # The release namespace comes from helm install -n, never from templates.
        assert "namespace" not in doc["metadata"]


def test_every_image_is_pinned(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    images = [
        c["image"]
        for doc in docs
        if doc["kind"] in {"Deployment", "StatefulSet", "Job"}
        for c in pod_spec(doc)["containers"]
    ]
    assert images
    for image in images:
        tag = image_tag(image)
        assert tag, f"{image}: no tag"
        assert tag != "latest", image


def test_each_service_has_probes_security_and_its_own_scaling(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, docs = rendered
    values = VALUE_SETS[name]
    deployments = {component(d): d for d in by_kind(docs, "Deployment").values()}
    hpas = {component(d): d for d in by_kind(docs, "HorizontalPodAutoscaler").values()}
    pdbs = {component(d): d for d in by_kind(docs, "PodDisruptionBudget").values()}
    services = {component(d): d for d in by_kind(docs, "Service").values()}
    assert set(deployments) == set(SERVICES)
    for svc in SERVICES:
        deployment = deployments[svc]
        spec = pod_spec(deployment)
        (container,) = spec["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["limits"]["memory"]
        env = {e["name"]: e for e in container["env"]}
        for secret in ("XDP47_DB_URL", "XDP47_AMQP_URL"):
            assert "secretKeyRef" in env[secret]["valueFrom"], secret
        assert services[svc]["spec"]["ports"][0]["targetPort"] == "http"

        autoscaling = values.get(svc, {}).get("autoscaling", {}).get("enabled", False)
        if autoscaling:
            hpa = hpas[svc]
            assert hpa["apiVersion"] == "autoscaling/v2"
            assert (
                hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
            )
            assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
            # The HPA owns the replica count; a fixed one would fight it on upgrade.
            assert "replicas" not in deployment["spec"]
        else:
            assert svc not in hpas
            assert deployment["spec"]["replicas"] >= 1
        assert (
            pdbs[svc]["spec"]["selector"]["matchLabels"]
            == (deployment["spec"]["selector"]["matchLabels"])
        )


def test_production_autoscales_every_service_and_reads_an_existing_secret() -> None:
    docs = list(documents(render(load_yaml(CI_VALUES[-1]))))
    assert CI_VALUES[-1].name == "production-values.yaml"
    hpas = {component(d) for d in by_kind(docs, "HorizontalPodAutoscaler").values()}
    assert hpas == set(SERVICES)
    assert not by_kind(docs, "Secret"), "existingSecret: the chart renders no Secret"
    for deployment in by_kind(docs, "Deployment").values():
        env = {e["name"]: e for e in pod_spec(deployment)["containers"][0]["env"]}
        assert env["XDP47_DB_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "xdp47-connections",
            "key": "db-url",
        }
    (monitor,) = by_kind(docs, "ServiceMonitor").values()
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]


def test_secrets_stay_out_of_the_configmap(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    for configmap in by_kind(docs, "ConfigMap").values():
        for key, value in configmap["data"].items():
            assert key not in {"XDP47_DB_URL", "XDP47_AMQP_URL", "XDP47_AGENT_TOKEN"}
            assert "://" not in value, key


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    (job,) = by_kind(docs, "Job").values()
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    (container,) = pod_spec(job)["containers"]
    assert container["command"] == ["xdp47-migrate"]
    (db_url,) = (e for e in container["env"] if e["name"] == "XDP47_DB_URL")
    secret_name = db_url["valueFrom"]["secretKeyRef"]["name"]
    secrets = by_kind(docs, "Secret")
    if secret_name in secrets:
        # A Secret the Job reads must exist before it: a hook with a lower weight.
        hook_secret = secrets[secret_name]["metadata"]["annotations"]
        assert "pre-install" in hook_secret["helm.sh/hook"]
        assert int(hook_secret["helm.sh/hook-weight"]) < int(
            annotations["helm.sh/hook-weight"]
        )


def test_ingress_sends_device_paths_to_ingest_and_the_rest_to_api() -> None:
    docs = list(documents(render(load_yaml(CI_VALUES[-1]))))
    ingresses = by_kind(docs, "Ingress")
    api_paths = ingresses["fleet-xdp47-api"]["spec"]["rules"][0]["http"]["paths"]
    assert [(p["path"], p["backend"]["service"]["name"]) for p in api_paths] == [
        ("/", "fleet-xdp47-api")
    ]
    ingest = ingresses["fleet-xdp47-ingest"]
    assert ingest["metadata"]["annotations"]["nginx.ingress.kubernetes.io/use-regex"]
    (path,) = ingest["spec"]["rules"][0]["http"]["paths"]
    assert path["pathType"] == "ImplementationSpecific"
    assert path["backend"]["service"]["name"] == "fleet-xdp47-ingest"
    route = re.compile(path["path"])
    assert route.match("/api/devices/kiosk-7/heartbeat")
    assert route.match("/api/devices/kiosk-7/desired")
    assert not route.match("/api/devices/claim")
    assert not route.match("/api/devices/kiosk-7")


def test_demo_fleet_pods_share_a_state_dir_between_agent_and_demo_app() -> None:
    docs = list(documents(render(DEMO_VALUES)))
    (fleet,) = by_kind(docs, "StatefulSet").values()
    assert fleet["spec"]["replicas"] == 5
    spec = pod_spec(fleet)
    containers = {c["name"]: c for c in spec["containers"]}
    assert set(containers) == {"agent", "demoapp"}
    (state,) = (v for v in spec["volumes"] if v["name"] == "state")
    assert "emptyDir" in state
    for container in containers.values():
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["state"] == "/var/lib/xdp47"
    agent_env = {e["name"]: e for e in containers["agent"]["env"]}
    assert agent_env["XDP47_DEVICE_ID"]["valueFrom"]["fieldRef"] == {
        "fieldPath": "metadata.name"
    }
    assert agent_env["XDP47_METRICS_URL"]["value"] == "http://127.0.0.1:9100/metrics"
    assert "secretKeyRef" in agent_env["XDP47_AGENT_TOKEN"]["valueFrom"]
    # The dev token is on: the control plane gets it from the Secret too.
    for deployment in by_kind(docs, "Deployment").values():
        names = {e["name"] for e in pod_spec(deployment)["containers"][0]["env"]}
        assert "XDP47_AGENT_TOKEN" in names


def test_notes_tell_how_to_reach_the_ui() -> None:
    notes = render(load_yaml(CI_VALUES[0]))["xdp47/templates/NOTES.txt"]
    assert "port-forward svc/fleet-xdp47-api" in notes
    assert "/ui" in notes
    notes = render(load_yaml(CI_VALUES[-1]))["xdp47/templates/NOTES.txt"]
    assert "https://fleet.example.com/ui" in notes
