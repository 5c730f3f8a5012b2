"""The demo app's metrics follow the applied version; bad versions are failing."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from xdp47_demoapp import DemoApp, is_bad, metrics_for, parse_bad_versions, read_metrics
from xdp47_demoapp.server import parse_addr


def test_metrics_are_deterministic_per_version():
    assert metrics_for("1.0.0") == metrics_for("1.0.0")
    assert metrics_for("1.0.0") != metrics_for("1.0.1")
    good = metrics_for("1.0.0")
    assert good["status"] == "ok"
    assert good["version"] == "1.0.0"
    assert good["error_rate"] < 0.05


@pytest.mark.parametrize("version", ["2.0-bad", "BAD", "release-Bad-3"])
def test_versions_containing_bad_are_failing(version):
    m = metrics_for(version)
    assert m["status"] == "failing"
    assert m["error_rate"] >= 0.25
    assert m["cpu"] >= 85


def test_listed_bad_versions_are_failing():
    bad = parse_bad_versions(" 3.0.0 , 3.0.1,")
    assert bad == frozenset({"3.0.0", "3.0.1"})
    assert metrics_for("3.0.1", bad)["status"] == "failing"
    assert metrics_for("3.0.2", bad)["status"] == "ok"
    assert not is_bad(None, bad)


@pytest.mark.parametrize("version", ["1.2.0-subtle", "SUBTLE", "4.0-Subtle-rc1"])
def test_subtly_bad_versions_are_healthy_with_ten_points_more_errors(version):
    m = metrics_for(version)
    assert m["status"] == "ok"
    assert 0.10 <= m["error_rate"] < 0.11
    assert m["cpu"] < 30  # the CPU of a good release: only the errors tell


def test_listed_subtle_versions_and_the_app_serving_them(tmp_path: Path):
    subtle = parse_bad_versions("5.0.0")
    assert metrics_for("5.0.0", (), subtle)["error_rate"] >= 0.10
    assert metrics_for("5.0.1", (), subtle)["error_rate"] < 0.01
    (tmp_path / "applied_version").write_text("5.0.0\n")
    app = DemoApp(tmp_path, port=0, subtle_versions=subtle)
    url = app.start()
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            served = json.loads(r.read())
    finally:
        app.stop()
    assert served == metrics_for("5.0.0", (), subtle)
    assert served["status"] == "ok"
    assert served["error_rate"] >= 0.10


def test_nothing_applied_is_ok(tmp_path: Path):
    assert read_metrics(tmp_path) == metrics_for(None)
    assert read_metrics(tmp_path)["version"] is None


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_server_reads_the_version_on_every_request(tmp_path: Path):
    apps = [DemoApp(tmp_path / f"d{i}", port=0, bad_versions={"9"}) for i in range(3)]
    for app in apps:
        app.state_dir.mkdir()
    urls = [app.start() for app in apps]
    try:
        assert _get(urls[0])["version"] is None
        (apps[0].state_dir / "applied_version").write_text("1.0")
        (apps[1].state_dir / "applied_version").write_text("2.0-bad")
        (apps[2].state_dir / "applied_version").write_text("9")
        assert _get(urls[0]) == metrics_for("1.0")
        assert _get(urls[1])["status"] == "failing"
        assert _get(urls[2])["status"] == "failing"
        (apps[1].state_dir / "applied_version").write_text("2.1")
        assert _get(urls[1])["status"] == "ok"
        with pytest.raises(urllib.error.HTTPError) as info:
            _get(urls[0].replace("/metrics", "/nope"))
        assert info.value.code == 404
        info.value.close()
    finally:
        for app in apps:
            app.stop()


@pytest.mark.parametrize("addr", ["9100", "host:", "host:99999", "h:x"])
def test_bad_addr_is_named(addr):
    with pytest.raises(ValueError, match="XDP47_DEMOAPP_ADDR"):
        parse_addr(addr)


def test_addr_parses():
    assert parse_addr("0.0.0.0:9100") == ("0.0.0.0", 9100)
    assert parse_addr(":9101") == ("127.0.0.1", 9101)
