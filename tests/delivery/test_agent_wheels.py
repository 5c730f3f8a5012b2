"""The agent installs from built wheels alone (docs/agent.md#install).

``xdp47-common`` is on no public index. A plain ``pip install`` of the agent
would look it up on PyPI, and if anyone registered that name there, pip would
install theirs. The documented install uses ``--no-index --find-links DIR``: pip
then resolves every name from DIR, the project's wheels and their third-party
dependencies, and nowhere else. This test builds the two wheels with
``uv build``, downloads the third-party wheels the lock pins (``pip download``,
the one networked step), installs the agent into a fresh venv with
``--no-index`` and runs ``xdp47-agent --help`` from it.
"""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

from tests.delivery.support import ROOT


def _run(*cmd: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env)
    return env / "bin" / "python"


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory, fresh_python: Path) -> Path:
    house = tmp_path_factory.mktemp("wheels")
    for package in ("xdp47-common", "xdp47-agent"):
        _ok(_run("uv", "build", "--package", package, "--wheel", "-o", house, "-q"))
    pins = house / "requirements.txt"
    pins.write_text(
        _ok(
            _run(
                "uv",
                "export",
                "--package",
                "xdp47-agent",
                "--no-emit-workspace",
                "--no-dev",
                "--no-hashes",
                "--frozen",
            )
        )
    )
    fetched = _run(fresh_python, "-m", "pip", "download", "-q", "-r", pins, "-d", house)
    if fetched.returncode != 0:  # no index reachable: nothing to prove offline
        pytest.skip(f"third-party wheels not downloadable: {fetched.stderr[-300:]}")
    pins.unlink()
    return house


def test_agent_installs_from_wheels_alone(fresh_python: Path, wheelhouse: Path):
    names = sorted(p.name for p in wheelhouse.glob("xdp47_*.whl"))
    assert names == [
        "xdp47_agent-0.1.0-py3-none-any.whl",
        "xdp47_common-0.1.0-py3-none-any.whl",
    ]
    _ok(
        _run(
            fresh_python,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            wheelhouse,
            "xdp47-agent",
        )
    )
    bin_dir = fresh_python.parent
    usage = _ok(_run(bin_dir / "xdp47-agent", "--help", cwd=wheelhouse))
    assert usage.startswith("usage: xdp47-agent")
    assert "XDP47_* environment variables" in usage
    # The shared code came from the wheel, installed into the fresh venv (not
    # the workspace's editable copy), without the server extras.
    where = _ok(
        _run(
            fresh_python,
            "-c",
            "import xdp47_common, importlib.util as u; print(xdp47_common.__file__);"
            "print(u.find_spec('asyncpg') is None, u.find_spec('fastapi') is None)",
            cwd=wheelhouse,
        )
    ).split()
    assert where[0].startswith(str(bin_dir.parent)), where
    assert where[1:] == ["True", "True"]


def test_without_the_wheelhouse_nothing_is_taken_from_elsewhere(tmp_path: Path):
    """``--no-index`` with a wheelhouse lacking xdp47-common fails: pip has no
    other place to take that name from (the protection itself)."""
    venv.EnvBuilder(with_pip=True).create(tmp_path / "venv")
    result = _run(
        tmp_path / "venv" / "bin" / "python",
        "-m",
        "pip",
        "install",
        "--no-index",
        "--find-links",
        tmp_path / "venv",
        "xdp47-common",
    )
    assert result.returncode != 0
    assert "No matching distribution found for xdp47-common" in (
        result.stdout + result.stderr
    )
