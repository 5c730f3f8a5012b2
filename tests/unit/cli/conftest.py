"""Every CLI unit test gets its own config file and no XDP47_* from the shell."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("XDP47_URL", "XDP47_TOKEN", "XDP47_TENANT", "XDP47_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "cfg" / "config.json"
    monkeypatch.setenv("XDP47_CONFIG", str(path))
    return path
