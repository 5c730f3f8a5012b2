"""U1 at a small size: the upload benchmark runs end to end on both stores and
reports a correct upload with its memory and throughput figures (never judged on
speed here)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:  # the bench scripts import each other by name
    sys.path.insert(0, str(BENCH))

uploads = importlib.import_module("uploads")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_b6_reports_each_store(
    server_db_url: str,
    amqp_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(uploads, "DB_URL", server_db_url)
    monkeypatch.setattr(uploads, "AMQP_URL", amqp_url)
    code = uploads.main(["--mib", "12", "--dir", str(tmp_path)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0, lines
    assert [line["store"] for line in lines] == ["fs", "s3"]
    for line in lines:
        assert line["ok"], line
        assert line["file_bytes"] == 12 << 20
        assert line["rss_growth_mib"] >= 0
        assert line["mib_per_s"] > 0
        assert line["ratio_to_cp"] > 0
    assert list(tmp_path.iterdir()) == []  # the workspace is removed
