"""The scheduler's import contracts (``[tool.importlinter]``) catch a violation.

A copy of ``xdp47_scheduler`` shadows the installed one; a handler that imports
asyncpg, as a new command handler might by mistake, breaks both scheduler
contracts, while the unchanged copy keeps them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import xdp47_scheduler
from tests.delivery.support import ROOT


def _lint(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    pkg = tmp_path / "xdp47_scheduler"
    shutil.copytree(
        Path(xdp47_scheduler.__file__).parent,
        pkg,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return pkg


def test_the_unchanged_scheduler_keeps_its_contracts(tmp_path: Path) -> None:
    _copy(tmp_path)
    result = _lint(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_handler_importing_asyncpg_breaks_them(tmp_path: Path) -> None:
    pkg = _copy(tmp_path)
    (pkg / "handlers" / "pause.py").write_text("import asyncpg\n")
    init = pkg / "handlers" / "__init__.py"
    init.write_text(init.read_text() + "from xdp47_scheduler.handlers import pause\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    out = result.stdout
    assert (
        "Within the scheduler only its PostgreSQL adapters import asyncpg BROKEN" in out
    )
    assert "handlers depend on the store port, not on PostgreSQL BROKEN" in out
    assert "xdp47_scheduler.handlers.pause -> asyncpg" in out
