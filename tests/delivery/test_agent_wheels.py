"""The agent installs from its wheel alone (docs/agent.md#install).

The agent depends on the standard library, ``packaging`` and PyNaCl (with
cffi and pycparser) only: no workspace package (``xdp47-common`` is on no
public index), no pydantic, httpx or cryptography. This test builds the agent's
wheel with ``uv build``, downloads the wheels of those dependencies as the lock
pins them (``pip download``, the one networked step), installs the agent into a
fresh venv with ``--no-index --find-links DIR`` and runs ``xdp47-agent --help``
from it.
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
    _ok(_run("uv", "build", "--package", "xdp47-agent", "--wheel", "-o", house, "-q"))
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


def test_agent_installs_from_its_wheel_alone(fresh_python: Path, wheelhouse: Path):
    names = sorted(p.name.split("-")[0] for p in wheelhouse.glob("*.whl"))
    assert names == ["cffi", "packaging", "pycparser", "pynacl", "xdp47_agent"]
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
    # Installed from the wheel into the fresh venv (not the workspace's
    # editable copy), with nothing of the server stack beside it.
    where = _ok(
        _run(
            fresh_python,
            "-c",
            "import xdp47_agent.main, nacl.signing, importlib.util as u;"
            "print(xdp47_agent.main.__file__);"
            "print(*(u.find_spec(m) is None for m in "
            "('xdp47_common', 'pydantic', 'httpx', 'cryptography')))",
            cwd=wheelhouse,
        )
    ).split()
    assert where[0].startswith(str(bin_dir.parent)), where
    assert where[1:] == ["True", "True", "True", "True"]
    installed = _ok(_run(fresh_python, "-m", "pip", "list", "--format=freeze"))
    dists = {line.split("==")[0].lower() for line in installed.split()}
    assert dists - {"pip", "setuptools"} == {
        "cffi",
        "packaging",
        "pycparser",
        "pynacl",
        "xdp47-agent",
    }
