"""The import contracts of pyproject.toml fail the build on a violation.

``lint-imports`` runs against a copy of ``xdp47_common`` placed first on the
import path: once as it is (every contract kept) and once with a module of the
pure core that imports a driver (the core and driver contracts broken). The first
run shows the second fails because of the planted import, not the set-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.delivery.support import ROOT

COMMON = ROOT / "libs" / "common" / "src" / "xdp47_common"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(path)}
    return subprocess.run(
        [
            str(LINT_IMPORTS),
            "--config",
            str(ROOT / "pyproject.toml"),
            "--no-cache",
            "--contract",
            "core",
            "--contract",
            "drivers-in-adapters",
        ],
        cwd=path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_lint_imports_fails_on_a_core_module_importing_a_driver(tmp_path: Path):
    shutil.copytree(COMMON, tmp_path / "xdp47_common")
    clean = _lint(tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    planted = tmp_path / "xdp47_common" / "rollout" / "planted.py"
    planted.write_text(
        '"""A deliberate violation."""\n\n'
        "import asyncpg\n\n"
        "from xdp47_common.adapters import pg\n\n"
        "__all__ = ['asyncpg', 'pg']\n"
    )
    broken = _lint(tmp_path)
    out = broken.stdout + broken.stderr
    assert broken.returncode != 0, out
    assert "BROKEN" in out
    assert "xdp47_common.rollout.planted -> asyncpg" in out
    assert "xdp47_common.rollout.planted -> xdp47_common.adapters" in out
