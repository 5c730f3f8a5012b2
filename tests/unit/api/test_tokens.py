"""Token format and hashing (xdp47_common.tokens) and scope expansion."""

from __future__ import annotations

import pytest

from xdp47_common.models import ALL_SCOPES, Scope, expand_scopes
from xdp47_common.tokens import (
    SecretKind,
    display_prefix,
    hash_secret,
    looks_valid,
    new_secret,
    secrets_equal,
)


@pytest.mark.parametrize("kind", list(SecretKind))
def test_new_secret_is_valid_prefixed_and_unique(kind):
    secrets = {new_secret(kind) for _ in range(50)}
    assert len(secrets) == 50
    for s in secrets:
        assert s.startswith(kind.value)
        assert looks_valid(s, kind)


def test_wrong_kind_is_invalid():
    assert not looks_valid(
        new_secret(SecretKind.API_TOKEN), SecretKind.DEVICE_CREDENTIAL
    )


def test_any_changed_character_fails_the_checksum():
    s = new_secret(SecretKind.API_TOKEN)
    for i in range(len(SecretKind.API_TOKEN.value), len(s)):
        swapped = "A" if s[i] != "A" else "B"
        assert not looks_valid(s[:i] + swapped + s[i + 1 :], SecretKind.API_TOKEN)


@pytest.mark.parametrize(
    "bad", ["", "devtoken123", "xdp47t_", "xdp47t_short", "xdp47t_" + "!" * 49]
)
def test_malformed_is_invalid(bad):
    assert not looks_valid(bad, SecretKind.API_TOKEN)


def test_hash_is_sha256_and_compared_in_constant_time():
    s = new_secret(SecretKind.API_TOKEN)
    assert len(hash_secret(s)) == 32
    assert secrets_equal(hash_secret(s), hash_secret(s))
    assert not secrets_equal(hash_secret(s), hash_secret(s + "x"))


def test_display_prefix_reveals_only_a_few_characters():
    s = new_secret(SecretKind.API_TOKEN)
    assert display_prefix(s) == s[:13]


@pytest.mark.parametrize(
    ("granted", "implied"),
    [
        ({Scope.DEVICES_WRITE}, {Scope.DEVICES_READ, Scope.DEVICES_CLAIM}),
        ({Scope.ROLLOUTS_WRITE}, {Scope.ROLLOUTS_READ}),
        ({Scope.TOKENS_WRITE}, {Scope.TOKENS_READ}),
        ({Scope.TENANTS_WRITE}, {Scope.TENANTS_READ}),
        ({Scope.DEVICES_CLAIM}, set()),
        ({Scope.ARTIFACTS_READ}, set()),
    ],
)
def test_expand_scopes(granted, implied):
    assert expand_scopes(granted) == frozenset(granted | implied)


def test_reads_never_imply_writes():
    reads = {s for s in Scope if s.endswith(":read")}
    assert expand_scopes(reads) == frozenset(reads)
    assert expand_scopes(ALL_SCOPES) == ALL_SCOPES
