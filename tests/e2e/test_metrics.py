"""docs/metrics.md against what the services serve, both ways: every ``xdp47_*``
metric each process (api, ingest, scheduler) serves at ``/metrics`` is listed
for it with its type, every listed one is served, and a served series carries
the documented labels. A rollout is started first so the command path's
series (publish, consume, command latency) have samples."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.operator_api import Operator
from tests.support.control_plane import ControlPlane
from tests.support.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
_ROW = re.compile(r"^\| `(xdp47_[a-z0-9_]+)` \| (\w+) \|([^|]*)\|")
SHARED = "every service"

Documented = dict[str, tuple[str, frozenset[str]]]


def documented() -> dict[str, Documented]:
    """Section title -> {metric: (type, labels)} from the tables of the doc."""
    sections: dict[str, Documented] = {}
    current: Documented | None = None
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), {})
        elif (m := _ROW.match(line)) and current is not None:
            labels = frozenset(re.findall(r"`(\w+)`", m.group(3)))
            current[m.group(1)] = (m.group(2), labels)
    return sections


def served(url: str) -> dict[str, tuple[str, set[frozenset[str]]]]:
    """{metric: (type, label sets of its samples)} of the ``xdp47_*`` families."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: dict[str, tuple[str, set[frozenset[str]]]] = {}
    for family in text_string_to_metric_families(text):
        # ``…_created``: prometheus_client's creation time of each counter and
        # histogram series, which the text format parses as a family of its own.
        if not family.name.startswith("xdp47_") or family.name.endswith("_created"):
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {
            frozenset(k for k in s.labels if k != "le")
            for s in family.samples
            if not s.name.endswith("_created")
        }
        out[name] = (family.type, labels)
    return out


def test_the_documented_metrics_are_those_served(
    e2e_plane: ControlPlane, operator: Operator
) -> None:
    artifact = operator.upload(b"metrics", "9.9.9")
    rollout = operator.rollout(artifact["id"], {"fleet": "nobody"}, waves=1)
    operator.start(rollout["id"])
    operator.wait_status(rollout["id"], "aborted")
    docs = documented()
    assert {"api", "ingest", "scheduler", SHARED} <= docs.keys(), docs.keys()
    urls = {
        "api": e2e_plane.api_url,
        "ingest": e2e_plane.ingest_url,
        "scheduler": e2e_plane.scheduler_url,
    }

    def latency_observed() -> None:
        scheduler = httpx.get(f"{e2e_plane.scheduler_url}/metrics").text
        assert 'xdp47_scheduler_command_latency_seconds_count{type="start"}' in (
            scheduler
        )

    wait_until(latency_observed, within=30)
    for service, url in urls.items():
        expected = docs[service] | docs[SHARED]
        got = served(url)
        assert sorted(got.keys() - expected.keys()) == [], f"{service}: not in docs"
        assert sorted(expected.keys() - got.keys()) == [], f"{service}: not served"
        for name, (kind, labels) in expected.items():
            assert got[name][0] == kind, (service, name, got[name][0])
            for sample_labels in got[name][1]:
                assert sample_labels == labels, (service, name, sample_labels)
    api = served(urls["api"])
    assert (
        frozenset({"exchange", "result"}) in (api["xdp47_messages_published_total"][1])
    ), "the api's command publish is not counted where the api is scraped"
