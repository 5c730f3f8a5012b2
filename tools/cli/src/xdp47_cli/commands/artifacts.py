"""``xdp47 artifacts ls|get|create|delete``.

``create`` registers a release either from a URI with its ``--sha256``, or from a
local ``--file``: the CLI streams the file once to compute its SHA256 and size.
With ``--uri`` as well, the file is only measured (it is served elsewhere);
without, it is streamed to ``POST /api/artifacts/upload`` (raw body, fields as
query parameters), the API serves it to devices, and the CLI checks that the
SHA256 the API computed is the one it computed. An API without that endpoint is
reported in one line.

``delete`` asks for a confirmation (naming the artifact's version) unless
``--yes``; the API refuses (409) while a rollout or a device still needs it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from xdp47_cli.client import ApiClient
from xdp47_cli.commands._common import (
    AllOption,
    LimitOption,
    add_get_command,
    list_into,
    parse_pairs,
    typed,
)
from xdp47_cli.commands._targeting import compatible_option
from xdp47_cli.errors import ApiError, CliError, guarded
from xdp47_cli.output import Column, OutputFormat, OutputOption, emit_record, get
from xdp47_cli.resolve import artifact_ref
from xdp47_cli.runtime import runtime
from xdp47_common.models import Artifact

__all__ = ["app", "file_digest"]

app = typer.Typer(help="Artifacts (releases devices download).", no_args_is_help=True)

UPLOAD_PATH = "/api/artifacts/upload"
_CHUNK = 1 << 20

COLUMNS = [
    Column("id", get("id")),
    Column("version", get("version")),
    Column("type", get("type")),
    Column("size", get("size")),
    Column(
        "sha256",
        lambda r: str(r.get("sha256", ""))[:16] + "…",
        only=OutputFormat.TABLE,
    ),
    Column("sha256", get("sha256"), only=OutputFormat.WIDE),
    Column("uri", get("uri")),
    Column("created", get("created_at")),
]

add_get_command(app, "/api/artifacts", Artifact, "ARTIFACT", artifact_ref)


def file_digest(path: Path) -> tuple[str, int]:
    """SHA256 (hex) and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise CliError(f"--file: cannot read {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest(), size


@app.command("ls")
@guarded
def list_artifacts(
    ctx: typer.Context,
    version: Annotated[str | None, typer.Option(help="Exact version.")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="Artifact type.")] = None,
    fmt: OutputFormat = OutputOption,
    limit: LimitOption = 100,
    fetch_all: AllOption = False,
) -> None:
    """List artifacts."""
    list_into(
        ctx,
        "/api/artifacts",
        Artifact,
        COLUMNS,
        fmt,
        limit=limit,
        fetch_all=fetch_all,
        params={"version": version, "type": type_},
    )


@app.command("create")
@guarded
def create_artifact(
    ctx: typer.Context,
    uri: Annotated[
        str | None, typer.Option(help="Where devices download it (http/https).")
    ] = None,
    sha256: Annotated[
        str | None, typer.Option(help="SHA256 of the content (with --uri alone).")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            dir_okay=False,
            help="Local file: SHA256 and size computed; uploaded unless --uri.",
        ),
    ] = None,
    version: Annotated[str | None, typer.Option(help="Release version.")] = None,
    type_: Annotated[
        str | None, typer.Option("--type", help="Type (API default application).")
    ] = None,
    size: Annotated[int | None, typer.Option(help="Size in bytes.")] = None,
    signature: Annotated[
        str | None, typer.Option(help="Base64 Ed25519 signature of the digest.")
    ] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="Metadata key=value; repeat.")
    ] = None,
    compatible: Annotated[
        list[str] | None,
        typer.Option(
            "--compatible",
            help="What it runs on: key=value or key in (a,b); repeat. Devices "
            "whose properties differ are never planned, and agents refuse it.",
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Default: the context's.")] = None,
    fmt: OutputFormat = OutputOption,
) -> None:
    """Register an artifact from --uri + --sha256, or from a local --file."""
    rt = runtime(ctx)
    body: dict[str, Any] = {"tenant": rt.require_tenant(tenant)}
    if file is not None:
        digest, measured = file_digest(file)
        if sha256 is not None and sha256.lower() != digest:
            raise CliError(f"--sha256 {sha256} does not match {file} ({digest})")
        if size is not None and size != measured:
            raise CliError(f"--size {size} does not match {file} ({measured} bytes)")
        sha256, size = digest, measured
    elif uri is None or sha256 is None:
        raise CliError("give --uri with --sha256, or --file (with or without --uri)")
    optional = {
        "version": version,
        "type": type_,
        "size": size,
        "signature": signature,
        "sha256": sha256,
    }
    body |= {k: v for k, v in optional.items() if v is not None}
    if meta:
        body["metadata"] = parse_pairs(meta, "--meta")
    if compatible:
        body["compatible"] = compatible_option(compatible)
    with rt.client() as client:
        if uri is not None:
            created = client.post("/api/artifacts", body | {"uri": uri})
        else:
            assert file is not None  # checked above: no --uri means --file
            created = _upload(client, file, body)
    typed(Artifact, created)
    emit_record(created, fmt)


def _upload(client: ApiClient, file: Path, fields: dict[str, Any]) -> Any:
    """Stream the file to the API, which stores it and serves it to devices."""
    params: dict[str, Any] = {
        k: fields.get(k) for k in ("tenant", "version", "type", "signature")
    }
    params["filename"] = file.name
    if fields.get("metadata"):
        params["metadata"] = json.dumps(fields["metadata"])
    if fields.get("compatible"):
        params["compatible"] = json.dumps(fields["compatible"])
    try:
        with file.open("rb") as f:
            created = client.request(
                "POST",
                UPLOAD_PATH,
                params=params,
                content=f,
                headers={"Content-Type": "application/octet-stream"},
            ).json()
    except ApiError as exc:
        if exc.status in (404, 405) and exc.detail in (
            "Not Found",
            "Method Not Allowed",
        ):
            raise CliError(
                f"this API has no upload endpoint ({UPLOAD_PATH} answered "
                f"{exc.status}); serve the file yourself and pass --uri"
            ) from exc
        raise
    # The server hashed what it received: a mismatch means the file changed while
    # it was read, or the bytes were altered on the way.
    if isinstance(created, dict) and created.get("sha256") != fields["sha256"]:
        raise CliError(
            f"uploaded {file}, but the API computed sha256 {created.get('sha256')} "
            f"instead of {fields['sha256']}; the artifact was registered anyway "
            f"as {created.get('id')}"
        )
    return created


@app.command("delete")
@guarded
def delete_artifact(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="ARTIFACT", help="Id or version.")],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Delete without asking.")
    ] = False,
) -> None:
    """Delete an artifact; its uploaded bytes go too unless another artifact
    has the same content. Refused while a draft or running rollout, or a
    device's kept desired state, needs it."""
    rt = runtime(ctx)
    with rt.client() as client:
        artifact_id = artifact_ref(client, ref)
        found = client.get(f"/api/artifacts/{artifact_id}")
        if not yes:
            name = found.get("version") or artifact_id
            typer.confirm(f"Delete artifact {name} ({artifact_id})?", abort=True)
        client.request("DELETE", f"/api/artifacts/{artifact_id}")
    typer.echo(f"deleted artifact {artifact_id}")
