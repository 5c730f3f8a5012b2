"""Stored contexts: login, the 0600 file, masking, selection and env overrides."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from tests.unit.cli.fakes import Recorder, invoke, json_response, tenant
from xdp47_cli.main import app
from xdp47_cli.runtime import Runtime

TOKEN = "xdp47t_" + "s" * 49


def login_handler(request: httpx.Request) -> httpx.Response:
    if request.headers["Authorization"] != f"Bearer {TOKEN}":
        return json_response(401, {"detail": "invalid token"})
    if request.url.path == "/api/tokens":
        return json_response(403, {"detail": "needs tokens:read"})
    return json_response(200, [tenant("acme")])


def login(*extra: str, handler=login_handler) -> Result:
    return invoke(
        handler, "login", "--url", "http://api.test/", "--token", TOKEN, *extra
    )


def test_login_stores_a_0600_file_and_detects_the_tenant(isolated_config: Path) -> None:
    result = login()
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(isolated_config.stat().st_mode) == 0o600
    stored = json.loads(isolated_config.read_text())
    assert stored["current"] == "default"
    assert stored["contexts"]["default"] == {
        "url": "http://api.test",
        "token": TOKEN,
        "tenant": "acme",
    }


def test_login_with_a_refused_token_stores_nothing(isolated_config: Path) -> None:
    result = invoke(
        login_handler, "login", "--url", "http://x", "--token", "xdp47t_wrong"
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: 401 invalid token")
    assert not isolated_config.exists()


def test_context_ls_masks_tokens_and_marks_the_current() -> None:
    login("--name", "one")
    login("--name", "two", "--tenant", "other")
    result = invoke(login_handler, "context", "ls", "-o", "json")
    rows = json.loads(result.stdout)
    assert [(r["name"], r["current"], r["tenant"]) for r in rows] == [
        ("one", False, "acme"),
        ("two", True, "other"),
    ]
    assert all(
        TOKEN not in r["token"] and r["token"].startswith("xdp47t_") for r in rows
    )
    assert TOKEN not in invoke(login_handler, "context", "ls").stdout


def test_context_use_switches_and_unknown_is_an_error() -> None:
    login("--name", "one")
    login("--name", "two")
    assert invoke(login_handler, "context", "use", "one").exit_code == 0
    show = invoke(login_handler, "context", "show", "-o", "json", url="", token="")
    assert json.loads(show.stdout)["context"] == "one"
    bad = invoke(login_handler, "context", "use", "nope")
    assert bad.exit_code == 1
    assert "no context named 'nope'" in bad.stderr


def run_with_stored_context(
    handler: Recorder, env: dict[str, str], *args: str
) -> Result:
    runtime = Runtime(transport=httpx.MockTransport(handler))
    return CliRunner().invoke(app, list(args), obj=runtime, env=env)


def test_stored_context_is_used_and_env_overrides_it() -> None:
    login()
    recorder = Recorder(
        lambda r: (
            json_response(200, {"selector": "", "count": 0})
            if r.url.path.endswith(":count")
            else json_response(200, [])
        )
    )
    run_with_stored_context(recorder, {}, "devices", "ls")
    run_with_stored_context(
        recorder,
        {"XDP47_URL": "http://other.test", "XDP47_TOKEN": "xdp47t_env"},
        "devices",
        "ls",
    )
    run_with_stored_context(recorder, {}, "--url", "http://flag.test", "devices", "ls")
    seen = [
        (str(r.url.host), r.headers["Authorization"])
        for r in recorder.requests
        if r.url.path == "/api/devices"
    ]
    assert seen == [
        ("api.test", f"Bearer {TOKEN}"),
        ("other.test", "Bearer xdp47t_env"),
        ("flag.test", f"Bearer {TOKEN}"),
    ]


def test_xdg_config_home_is_the_default_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDP47_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert login().exit_code == 0
    path = tmp_path / "xdg" / "xdp47" / "config.json"
    assert json.loads(path.read_text())["current"] == "default"


def test_a_corrupt_config_file_is_one_line(isolated_config: Path) -> None:
    isolated_config.parent.mkdir(parents=True)
    isolated_config.write_text("{not json")
    result = invoke(login_handler, "context", "ls")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: cannot read the config file {isolated_config}"
    )
