"""Draw the shipped Grafana dashboard's panels from a Prometheus, as a PNG.

Grafana is not needed: every panel of ``helm/xdp47/files/xdp47-dashboard.json``
is queried with its own PromQL (``/api/v1/query_range``) and drawn with
matplotlib in the dashboard's layout, legends from each target's
``legendFormat``. docs/deploy.md's picture comes from a Prometheus that scraped
``xdp47 demo`` (docs/deploy.md "Monitoring" says how)::

    uv run python scripts/dashboard_picture.py --prometheus http://127.0.0.1:9090 \\
        --minutes 15 --out docs/images/dashboard.png
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # (after choosing the backend)
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "helm" / "xdp47" / "files" / "xdp47-dashboard.json"
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def query_range(
    client: httpx.Client, expr: str, start: float, end: float, step: float
) -> list[dict[str, Any]]:
    r = client.get(
        "/api/v1/query_range",
        params={"query": expr, "start": start, "end": end, "step": step},
    )
    r.raise_for_status()
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


def legend(fmt: str, labels: dict[str, str]) -> str:
    return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), fmt).strip()


def draw(prometheus: str, minutes: float, out: Path, columns: int = 2) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    end = time.time()
    start = end - minutes * 60
    step = max(5.0, minutes * 60 / 240)
    rows = (len(panels) + columns - 1) // columns
    plt.style.use("dark_background")
    fig, axes = plt.subplots(rows, columns, figsize=(8 * columns, 2.6 * rows))
    fig.patch.set_facecolor("#111217")
    with httpx.Client(base_url=prometheus, timeout=30) as client:
        for ax, panel in zip(axes.flat, panels, strict=False):
            ax.set_facecolor("#181b1f")
            ax.set_title(panel["title"], loc="left", fontsize=10, color="#ccccdc")
            for target in panel["targets"]:
                for series in query_range(client, target["expr"], start, end, step):
                    points = [
                        (datetime.fromtimestamp(float(t), UTC), float(v))
                        for t, v in series["values"]
                        if v not in ("NaN", "+Inf", "-Inf")
                    ]
                    if not points:
                        continue
                    xs, ys = zip(*points, strict=True)
                    ax.plot(
                        xs,
                        ys,
                        linewidth=1.2,
                        label=legend(target["legendFormat"], series["metric"]),
                    )
            unit = panel["fieldConfig"]["defaults"].get("unit", "")
            ax.set_ylabel({"s": "seconds", "reqps": "per second"}.get(unit, ""))
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
            ax.tick_params(labelsize=8, colors="#8e8e8e")
            ax.grid(color="#2c3235", linewidth=0.5)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="upper left", framealpha=0.3)
            else:
                ax.text(
                    0.5,
                    0.5,
                    "no data",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    color="#8e8e8e",
                )
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
    fig.suptitle(dashboard["title"], x=0.01, ha="left", color="#ccccdc")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, facecolor=fig.get_facecolor())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prometheus", required=True, help="Prometheus base URL")
    p.add_argument("--minutes", type=float, default=15, help="time range drawn")
    p.add_argument("--out", type=Path, default=ROOT / "docs/images/dashboard.png")
    args = p.parse_args()
    draw(args.prometheus, args.minutes, args.out)


if __name__ == "__main__":
    main()
