"""The services' Dockerfiles keep their essentials (there is no Docker engine here).

Each is parsed statically: pinned base images, a multi-stage build whose final
stage runs as a non-root user, the locked (frozen) uv install of its own package,
a healthcheck for the HTTP services, and a build context that holds every
workspace member the lock file names.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

from tests.delivery.support import ROOT, image_tag

SERVICES = ("api", "ingest", "scheduler", "agent", "demoapp")
HTTP_HEALTH = {
    "api": "/livez",
    "ingest": "/livez",
    "scheduler": "/livez",
    "demoapp": "/healthz",
}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(path: Path) -> list[Stage]:
    """Split a Dockerfile into stages of (INSTRUCTION, arguments)."""
    text = re.sub(r"\\\n", " ", path.read_text())  # join continuation lines
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(
                r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.I
            )
            assert match, f"{path}: cannot parse FROM {args}"
            stages.append(Stage(base=match[1], name=match[2]))
        else:
            assert stages, f"{path}: {keyword} before FROM"
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


@pytest.fixture(params=SERVICES)
def service(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stages(service: str) -> list[Stage]:
    path = ROOT / "services" / service / "Dockerfile"
    assert path.is_file(), f"{path} is missing"
    return parse(path)


def test_base_images_are_pinned(stages: list[Stage]) -> None:
    names = {s.name for s in stages if s.name}
    for stage in stages:
        if stage.base in names:  # FROM an earlier stage
            continue
        tag = image_tag(stage.base)
        assert tag, f"{stage.base}: untagged base image"
        assert tag != "latest", f"{stage.base}: 'latest' is not a pin"
        assert "$" not in stage.base, f"{stage.base}: base chosen by a build argument"
    final = stages[-1].base
    assert final.startswith("python:3.11-slim"), final


def test_final_stage_runs_as_a_non_root_user(stages: list[Stage]) -> None:
    final = stages[-1]
    users = final.all("USER")
    assert users, "the final stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    # Numeric, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
    assert user.isdigit()


def test_multi_stage_and_only_the_venv_reaches_the_final_image(
    stages: list[Stage],
) -> None:
    assert len(stages) >= 2
    final = stages[-1]
    copies = final.all("COPY")
    assert copies == ["--from=builder /opt/venv /opt/venv"], copies
    runs = " ".join(final.all("RUN"))
    for tool in ("apt-get install", "pip install", "uv ", "gcc", "build-essential"):
        assert tool not in runs, f"final stage installs build tooling: {tool}"


def test_locked_install_of_its_own_package(service: str, stages: list[Stage]) -> None:
    syncs = [run for s in stages for run in s.all("RUN") if "uv sync" in run]
    assert len(syncs) == 1, syncs
    (sync,) = syncs
    for flag in ("--frozen", "--no-dev", "--no-editable", f"--package xdp47-{service}"):
        assert flag in sync, f"uv sync without {flag}"
    copied = " ".join(c for s in stages for c in s.all("COPY"))
    assert "uv.lock" in copied


def test_entrypoint_and_healthcheck(service: str, stages: list[Stage]) -> None:
    final = stages[-1]
    assert final.all("ENTRYPOINT") == [f'["xdp47-{service}"]']
    checks = final.all("HEALTHCHECK")
    assert len(checks) == 1
    if service in HTTP_HEALTH:
        assert HTTP_HEALTH[service] in checks[0]
        assert final.all("EXPOSE"), "an HTTP service declares its port"
    else:
        assert checks[0] == "NONE"  # the agent: reason in its Dockerfile


def test_build_context_holds_every_workspace_member() -> None:
    """uv reads the whole workspace: a member left out breaks every image build."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members = pyproject["tool"]["uv"]["workspace"]["members"]
    tops = {m.split("/")[0] for m in members}
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    included = {line[1:] for line in ignore if line.startswith("!")}
    for top in tops:
        assert top in included, f".dockerignore leaves out workspace dir {top}/"
    for service in SERVICES:
        copies = parse(ROOT / "services" / service / "Dockerfile")[1].all("COPY")
        for top in tops:
            assert any(fnmatch.fnmatch(c, f"{top} ./{top}") for c in copies), (
                f"services/{service}/Dockerfile does not copy {top}/"
            )


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "xdp47_dockerfiles", ROOT / "scripts" / "dockerfiles.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_the_five_dockerfiles_are_the_one_template() -> None:
    """Edited by hand, a Dockerfile drifts from the others: this names it."""
    generator = _generator()
    assert sorted(s.name for s in generator.SERVICES) == sorted(SERVICES)
    assert generator.stale() == [], "run: uv run python scripts/dockerfiles.py"


def test_writable_paths_live_under_the_working_directory(
    service: str, stages: list[Stage]
) -> None:
    """Under a read-only root filesystem a relative path (./var/blobs) must not
    resolve into /: the working directory is the image's one writable dir."""
    final = stages[-1]
    assert final.all("WORKDIR") == ["/var/lib/xdp47"]
    runs = " ".join(final.all("RUN"))
    assert "install -d -o 10001 -g 10001 -m 0755 /var/lib/xdp47" in runs
    if service == "api":  # compose mounts a named volume there: owned by 10001
        assert "/var/lib/xdp47 /var/lib/xdp47/blobs" in runs
    env = " ".join(final.all("ENV"))
    if service == "api":
        assert "XDP47_BLOB_DIR=/var/lib/xdp47/blobs" in env
        assert final.all("VOLUME") == ['["/var/lib/xdp47"]']
