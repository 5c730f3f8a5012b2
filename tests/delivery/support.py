"""Helpers of the delivery tests: paths, the chart renderer and YAML loading.

``helm-python-sdk`` is a young binding (0.2.x), so every call to it goes through
``render`` and ``lint`` here; a change in its API is fixed in one place.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import yaml

__all__ = [
    "CHART",
    "CI_VALUES",
    "ROOT",
    "check_jsonschema",
    "documents",
    "image_tag",
    "lint",
    "load_yaml",
    "render",
    "validate_schema",
]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "xdp47"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "fleet"
NAMESPACE = "xdp47"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def render(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Render the chart offline; template path → manifest text."""
    with helm_python.Chart.load(CHART) as chart:
        return chart.render(
            values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True
        )


def lint(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """``helm lint --strict`` with ``values``; the report as a dict."""
    return helm_python.lint(CHART, values or {}, strict=True, namespace=NAMESPACE)


def validate_schema(values: dict[str, Any]) -> None:
    """Raise ``helm_python.errors.HelmValuesError`` when values break the schema."""
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(chart.merge_values(values))


def documents(rendered: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Every Kubernetes object in a render (NOTES.txt and empty documents skipped)."""
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                yield doc


def image_tag(reference: str) -> str | None:
    """The tag of an image reference, None when untagged (``host:5000/img`` too)."""
    name = reference.split("@", 1)[0]
    _, _, last = name.rpartition("/")
    return last.rpartition(":")[2] if ":" in last else None


def check_jsonschema(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run check-jsonschema (offline: built-in, vendored schemas only)."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
