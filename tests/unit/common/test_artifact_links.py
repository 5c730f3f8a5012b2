"""Download links of artifacts in the S3 store: CDN URLs and reused presigned URLs."""

from __future__ import annotations

import pytest
from obstore.store import S3Store

from xdp47_common.adapters.objects import ArtifactLinks, blob_key, links_from_settings
from xdp47_common.settings import ControlSettings

DIGEST = "ab" + "0" * 62


def _store() -> S3Store:
    return S3Store(
        "bkt",
        endpoint="http://127.0.0.1:9",
        region="eu-west-1",
        access_key_id="AKID",
        secret_access_key="secret",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )


def test_keys_are_content_addressed_under_the_prefix() -> None:
    assert blob_key(DIGEST, "p/") == f"p/sha256/ab/{DIGEST}"
    with pytest.raises(ValueError, match="SHA256"):
        blob_key("../etc/passwd")


def test_a_cdn_gets_the_key_under_its_base() -> None:
    links = ArtifactLinks(_store(), prefix="p/", cdn_url="https://cdn.example/x/")
    assert links.url_for(DIGEST) == f"https://cdn.example/x/p/sha256/ab/{DIGEST}"


def test_a_presigned_url_is_reused_for_half_its_life() -> None:
    now = [1000.0]
    links = ArtifactLinks(_store(), ttl=600, clock=lambda: now[0])
    first = links.url_for(DIGEST)
    assert first.startswith(f"http://127.0.0.1:9/bkt/sha256/ab/{DIGEST}?")
    assert "X-Amz-Expires=600" in first
    assert "X-Amz-Credential=AKID%2F" in first
    now[0] += 299
    assert links.url_for(DIGEST) == first  # same answer, same ETag
    other = "cd" + "1" * 62
    assert other in links.url_for(other)
    now[0] += 2
    # Half its life is gone: signed again, kept for another half from now.
    assert "X-Amz-Signature=" in links.url_for(DIGEST)
    assert links._signed[DIGEST][1] == now[0] + 300


def test_only_the_s3_store_has_links() -> None:
    assert links_from_settings(ControlSettings()) is None
    s3 = ControlSettings(blob_store="s3", s3_bucket="b", s3_region="eu-west-1")
    assert isinstance(links_from_settings(s3), ArtifactLinks)


def test_the_s3_store_needs_a_bucket() -> None:
    with pytest.raises(ValueError, match="XDP47_S3_BUCKET"):
        ControlSettings(blob_store="s3")
