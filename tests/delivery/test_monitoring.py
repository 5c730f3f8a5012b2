"""The shipped Grafana dashboard and Prometheus alert rules: every metric their
PromQL uses is one docs/metrics.md lists (which tests/e2e/test_metrics.py checks
against what the services serve, both ways); the rules cover what an operator
is promised; the chart renders them only when enabled, from the same files
compose users get."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest

from tests.delivery.support import CHART, ROOT, documents, load_yaml, render

DASHBOARD = CHART / "files" / "xdp47-dashboard.json"
ALERTS = CHART / "files" / "xdp47-alerts.yaml"
METRICS_DOC = ROOT / "docs" / "metrics.md"
COMPOSE_MONITORING = ROOT / "compose" / "monitoring"
_DOC_ROW = re.compile(r"^\| `(xdp47_[a-z0-9_]+)` \| (\w+) \|", re.M)
# What a selector may name for each documented type (histograms are queried
# through their series).
_SERIES = {
    "counter": ("",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def documented_series() -> set[str]:
    return {
        name + suffix
        for name, kind in _DOC_ROW.findall(METRICS_DOC.read_text())
        for suffix in _SERIES[kind]
    }


def metric_names(expr: str) -> set[str]:
    """The metric names the selectors of a PromQL expression name (parsed)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if node is None:
            return
        if isinstance(node, list | tuple):
            for item in node:
                walk(item)
            return
        kind = type(node).__name__
        if kind == "VectorSelector":
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(node.name)
            return
        for attr in ("lhs", "rhs", "expr", "param", "args", "vector_selector"):
            if hasattr(node, attr):
                walk(getattr(node, attr))

    walk(promql_parser.parse(expr))
    return names


def dashboard_exprs() -> Iterator[str]:
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            yield target["expr"]


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = load_yaml(ALERTS)["groups"][0]["rules"]
    return rules


def test_the_parser_finds_every_selector() -> None:
    expr = (
        'sum by (queue) (rate(a_total{x="y"}[5m])) / on (queue) b'
        " unless histogram_quantile(0.9, sum by (le) (rate(c_bucket[1m])))"
    )
    assert metric_names(expr) == {"a_total", "b", "c_bucket"}


@pytest.mark.parametrize(
    "expr", [*dashboard_exprs(), *(r["expr"] for r in alert_rules())]
)
def test_every_metric_used_is_documented(expr: str) -> None:
    used = metric_names(expr)
    assert used, expr
    assert sorted(used - documented_series()) == [], expr


def test_the_alerts_an_operator_is_promised() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    assert {
        "XDP47QueueBacklogGrowing",
        "XDP47DeadLetters",
        "XDP47HeartbeatsRejected",
        "XDP47SchedulerNoConsumer",
        "XDP47SchedulerNotConsuming",
        "XDP47RolloutPastDeadline",
    } <= rules.keys()
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    for name in rules:
        assert f"`{name}`" in deploy, f"docs/deploy.md does not list {name}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool here")
def test_promtool_accepts_the_rules() -> None:
    """Prometheus' own check (Debian's ``prometheus`` package ships promtool)."""
    done = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in done.stdout


def test_compose_users_get_the_same_files() -> None:
    for shipped in (DASHBOARD, ALERTS):
        copy = COMPOSE_MONITORING / shipped.name
        assert copy.read_bytes() == shipped.read_bytes(), copy
    prometheus = load_yaml(COMPOSE_MONITORING / "prometheus.yml")
    assert prometheus["rule_files"] == [f"/etc/prometheus/{ALERTS.name}"]
    jobs = {c["job_name"] for c in prometheus["scrape_configs"]}
    assert {"api", "ingest", "scheduler"} <= jobs


def _kinds(values: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The default install's objects by kind, with ``values`` on top."""
    out: dict[str, list[dict[str, Any]]] = {}
    base = load_yaml(CHART / "ci" / "default-values.yaml")
    for doc in documents(render(base | values)):
        out.setdefault(doc["kind"], []).append(doc)
    return out


def test_chart_renders_them_only_when_enabled() -> None:
    off = _kinds({})
    assert "PrometheusRule" not in off
    assert not any(
        m["metadata"]["name"].endswith("-dashboard") for m in off["ConfigMap"]
    )
    on = _kinds(
        {
            "monitoring": {
                "dashboard": {"enabled": True, "annotations": {"grafana_folder": "X"}},
                "prometheusRule": {
                    "enabled": True,
                    "labels": {"release": "prometheus"},
                },
            }
        }
    )
    [dashboard] = [
        m for m in on["ConfigMap"] if m["metadata"]["name"].endswith("-dashboard")
    ]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "X"}
    assert json.loads(dashboard["data"]["xdp47-dashboard.json"]) == json.loads(
        DASHBOARD.read_text()
    )
    [rule] = on["PrometheusRule"]
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["spec"] == load_yaml(ALERTS)


def test_the_system_page_reads_every_replica() -> None:
    """The api's XDP47_*_METRICS_URLS name headless Services of ingest and the
    scheduler, whose names resolve to each ready pod."""
    kinds = _kinds({})
    [api] = [
        d
        for d in kinds["Deployment"]
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
    ]
    env = {
        e["name"]: e.get("value")
        for e in api["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    services = {s["metadata"]["name"]: s for s in kinds["Service"]}
    for var, port in (
        ("XDP47_INGEST_METRICS_URLS", 8080),
        ("XDP47_SCHEDULER_METRICS_URLS", 9090),
    ):
        host = env[var].removeprefix("http://").split(":")[0]
        assert services[host]["spec"]["clusterIP"] == "None", var
        assert env[var].endswith(f":{port}/metrics"), env[var]
    own = _kinds({"api": {"env": {"XDP47_INGEST_METRICS_URLS": "http://x/metrics"}}})
    [api] = [
        d
        for d in own["Deployment"]
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
    ]
    names = [e["name"] for e in api["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert names.count("XDP47_INGEST_METRICS_URLS") == 1
