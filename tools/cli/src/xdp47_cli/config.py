"""The stored contexts: named (URL, token, tenant) triples in one JSON file.

The file is ``$XDP47_CONFIG``, else ``$XDG_CONFIG_HOME/xdp47/config.json``, else
``~/.config/xdp47/config.json``. It holds tokens, so it is written with mode 0600
(atomically, through a temporary file in the same folder) and its folder with 0700.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xdp47_cli.errors import CliError

__all__ = ["Config", "Context", "config_path", "load_config", "mask", "save_config"]


class Context(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str
    token: str
    tenant: str | None = None


class Config(BaseModel):
    model_config = ConfigDict(extra="ignore")

    current: str | None = None
    contexts: dict[str, Context] = Field(default_factory=dict)


def config_path() -> Path:
    explicit = os.environ.get("XDP47_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "xdp47" / "config.json"


def load_config(path: Path | None = None) -> Config:
    """The stored config; an empty one when the file does not exist yet."""
    path = path or config_path()
    try:
        raw: Any = json.loads(path.read_text())
    except FileNotFoundError:
        return Config()
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the config file {path}: {exc}") from exc
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CliError(f"config file {path}: {where}: {first['msg']}") from exc


def save_config(config: Config, path: Path | None = None) -> Path:
    path = path or config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = json.dumps(config.model_dump(mode="json"), indent=2) + "\n"
    # mkstemp creates the file 0600, so the token is never readable by others,
    # not even for the moment before the rename.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def mask(token: str) -> str:
    """Enough of a token to recognise it, never enough to use it."""
    if len(token) <= 16:
        return "*" * len(token)
    # As many characters as the API's own display prefix shows: kind plus six.
    return f"{token[: token.find('_') + 7 if '_' in token else 6]}…"
