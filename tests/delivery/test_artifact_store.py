"""The chart and the compose stack store artifacts where every replica finds them.

``helm template`` with the S3 values and with the PVC values renders the volumes,
environment and probes checked here; the schema refuses several api replicas on a
filesystem store that is not a shared volume; and the upload body limit is one
value, read from the chart values, the compose file and gateway and the app's
settings alike.
"""

from __future__ import annotations

import copy
import os
import re
import stat
import subprocess
from typing import Any

import helm_python
import pytest

from tests.delivery.support import (
    CHART,
    CI_VALUES,
    ROOT,
    documents,
    load_yaml,
    render,
    validate_schema,
)
from xdp47_api.ui.pages.artifact_upload import UPLOAD_FORM_OVERHEAD
from xdp47_common.settings import ControlSettings

BASE: dict[str, Any] = load_yaml(CI_VALUES[0])
S3: dict[str, Any] = {
    "store": "s3",
    "s3": {
        "bucket": "releases",
        "endpoint": "https://minio.example:9000",
        "region": "eu-west-1",
        "prefix": "fleet/",
        "existingSecret": "s3-keys",
    },
}
SLACK = 1 << 20  # what the proxies admit above the upload limit


def _with(**artifacts: Any) -> dict[str, Any]:
    values = copy.deepcopy(BASE)
    values["artifacts"] = artifacts
    return values


def _deployments(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    docs = documents(render(values))
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in docs
        if d["kind"] == "Deployment"
    }


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_default_install_keeps_uploads_on_its_own_volume() -> None:
    docs = list(documents(render(BASE)))
    (claim,) = (d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    api = _deployments(BASE)["api"]
    assert api["spec"]["replicas"] == 1
    # A ReadWriteOnce volume cannot follow a surge pod to another node.
    assert api["spec"]["strategy"] == {"type": "Recreate"}
    pod = api["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["workingDir"] == "/var/lib/xdp47"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/var/lib/xdp47/blobs"] == "blobs"
    # The working directory itself is writable too (an emptyDir), as is /tmp.
    assert mounts["/var/lib/xdp47"] == "work"
    assert mounts["/tmp"] == "tmp"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert (
        volumes["blobs"]["persistentVolumeClaim"]["claimName"]
        == (claim["metadata"]["name"])
    )
    env = _env(api)
    assert env["XDP47_BLOB_STORE"] == "fs"
    assert env["XDP47_BLOB_DIR"] == "/var/lib/xdp47/blobs"
    # Readiness is what fails while that volume is not writable (the probe object).
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_several_replicas_share_a_read_write_many_claim() -> None:
    values = _with(
        store="filesystem",
        filesystem={
            "persistence": {
                "enabled": True,
                "existingClaim": "shared-nfs",
                "accessMode": "ReadWriteMany",
                "size": "100Gi",
            }
        },
    )
    values["api"] = {"replicaCount": 3}
    validate_schema(values)
    docs = list(documents(render(values)))
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    api = _deployments(values)["api"]
    assert api["spec"]["replicas"] == 3
    assert api["spec"]["strategy"]["type"] == "RollingUpdate"
    volumes = {v["name"]: v for v in api["spec"]["template"]["spec"]["volumes"]}
    assert volumes["blobs"]["persistentVolumeClaim"]["claimName"] == "shared-nfs"


@pytest.mark.parametrize(
    ("api", "persistence"),
    [
        ({"replicaCount": 2}, {"enabled": True, "accessMode": "ReadWriteOnce"}),
        ({"replicaCount": 2}, {"enabled": False, "accessMode": "ReadWriteMany"}),
        ({"autoscaling": {"enabled": True}}, {"enabled": True}),
    ],
)
def test_the_schema_refuses_replicas_without_a_shared_volume(
    api: dict[str, Any], persistence: dict[str, Any]
) -> None:
    values = copy.deepcopy(BASE)
    values["api"] = api
    values["artifacts"] = {"filesystem": {"persistence": persistence}}
    with pytest.raises(
        helm_python.errors.HelmValuesError, match="artifacts/filesystem/persistence"
    ):
        validate_schema(values)
    with pytest.raises(helm_python.errors.HelmError):
        render(values)


def test_the_s3_store_needs_a_bucket() -> None:
    with pytest.raises(helm_python.errors.HelmValuesError, match="bucket"):
        validate_schema(_with(store="s3"))


def test_the_s3_store_gives_api_and_ingest_the_bucket_and_no_volume() -> None:
    values = _with(**S3)
    values["api"] = {"replicaCount": 3}
    validate_schema(values)
    docs = list(documents(render(values)))
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    deployments = _deployments(values)
    api = deployments["api"]
    assert api["spec"]["replicas"] == 3
    assert api["spec"]["strategy"]["type"] == "RollingUpdate"
    names = [v["name"] for v in api["spec"]["template"]["spec"]["volumes"]]
    assert names == ["tmp", "work"]
    key = {"secretKeyRef": {"name": "s3-keys", "key": "access-key-id"}}
    secret = {"secretKeyRef": {"name": "s3-keys", "key": "secret-access-key"}}
    for component in ("api", "ingest"):
        env = _env(deployments[component])
        assert env["XDP47_BLOB_STORE"] == "s3", component
        assert env["XDP47_S3_BUCKET"] == "releases"
        assert env["XDP47_S3_ENDPOINT"] == "https://minio.example:9000"
        assert env["XDP47_S3_REGION"] == "eu-west-1"
        assert env["XDP47_S3_PREFIX"] == "fleet/"
        assert env["XDP47_S3_PRESIGN_TTL_S"] == "3600"
        assert env["XDP47_S3_ACCESS_KEY_ID"] == key
        assert env["XDP47_S3_SECRET_ACCESS_KEY"] == secret
        # The settings the services build from it are valid.
        fields: dict[str, Any] = {}
        for name, value in env.items():
            field = name.removeprefix("XDP47_").lower()
            if isinstance(value, str) and field in ControlSettings.model_fields:
                fields[field] = value
        settings = ControlSettings(**fields)
        assert settings.blob_store == "s3"
    assert "XDP47_BLOB_STORE" not in _env(deployments["scheduler"])


def _compose_default(compose: str, name: str) -> int:
    found = set(re.findall(rf"\${{{name}:-(\d+)}}", compose))
    assert len(found) == 1, (name, found)
    return int(found.pop())


def test_one_body_limit_for_app_chart_ingress_and_gateway() -> None:
    limit = ControlSettings().max_upload_bytes
    # The chart's value flows to the api's environment and the ingress annotation.
    values = load_yaml(CHART / "values.yaml")
    assert values["artifacts"]["maxUploadBytes"] == limit
    rendered = list(documents(render(_with(maxUploadBytes=3 << 20))))
    (api,) = (
        d
        for d in rendered
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-api")
    )
    assert _env(api)["XDP47_MAX_UPLOAD_BYTES"] == str(3 << 20)
    prod = load_yaml(CI_VALUES[-1])
    ingress = next(
        d
        for d in documents(render(prod))
        if d["kind"] == "Ingress" and d["metadata"]["name"].endswith("-api")
    )
    body = ingress["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/proxy-body-size"
    ]
    assert int(body) == prod["artifacts"]["maxUploadBytes"] + SLACK
    # The UI form's overhead fits in the slack: the api, not a proxy, says 413.
    assert UPLOAD_FORM_OVERHEAD <= SLACK
    # Compose: the same default reaches the api and the gateway, which adds the
    # same slack before nginx reads it.
    compose = (ROOT / "compose" / "compose.yaml").read_text()
    assert _compose_default(compose, "XDP47_MAX_UPLOAD_BYTES") == limit
    doc = load_yaml(ROOT / "compose" / "compose.yaml")
    gateway = doc["services"]["gateway"]
    assert "XDP47_MAX_UPLOAD_BYTES" in gateway["environment"]
    assert "XDP47_MAX_UPLOAD_BYTES" in doc["x-control-env"]
    # What the nginx image does at start: source the .envsh, render the template.
    gateway_dir = ROOT / "compose" / "gateway"
    script = gateway_dir / "15-xdp47-body-limit.envsh"
    assert os.stat(script).st_mode & stat.S_IXUSR, "nginx sources only executables"
    conf = subprocess.run(
        [
            "sh",
            "-c",
            f". \"{script}\" && envsubst '${{XDP47_GATEWAY_UPLOAD_BODY}}' "
            f'< "{gateway_dir / "default.conf.template"}"',
        ],
        env={"PATH": os.environ["PATH"], "XDP47_MAX_UPLOAD_BYTES": str(limit)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    upload = re.search(r"location ~ (\S*artifacts\S*) \{([^}]*)\}", conf)
    assert upload, conf
    assert re.match(upload[1], "/api/artifacts/upload")
    assert re.match(upload[1], "/ui/artifacts/upload")
    assert f"client_max_body_size {limit + SLACK};" in upload[2]
    assert "proxy_request_buffering off;" in upload[2]
    assert "$api_upstream" in conf  # nginx's own variables are left alone
