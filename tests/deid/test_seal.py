"""Sealed inputs open only with the enclave's key, for the job they were sealed for, unaltered."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from deid.seal import MAX_PLAINTEXT, SealError, parse_public, public_text, seal, unseal

KEY = X25519PrivateKey.generate()
SUBJECT = "110105199003071234"


def test_a_sealed_value_opens_for_its_job_and_hides_the_value() -> None:
    blob = seal(public_text(KEY), SUBJECT, b"job_1")
    assert SUBJECT.encode() not in blob
    assert unseal(KEY, blob, b"job_1") == SUBJECT
    assert seal(public_text(KEY), SUBJECT, b"job_1") != blob  # a fresh ephemeral key each time


@pytest.mark.parametrize(
    "attack",
    [
        lambda blob: unseal(KEY, blob, b"job_2"),
        lambda blob: unseal(X25519PrivateKey.generate(), blob, b"job_1"),
        lambda blob: unseal(KEY, blob[:-1] + bytes([blob[-1] ^ 1]), b"job_1"),
        lambda blob: unseal(KEY, blob[:40], b"job_1"),
        lambda blob: unseal(KEY, b"", b"job_1"),
    ],
    ids=["other job", "other key", "flipped bit", "truncated", "empty"],
)
def test_a_sealed_value_does_not_open_otherwise(attack: object) -> None:
    blob = seal(public_text(KEY), SUBJECT, b"job_1")
    with pytest.raises(SealError, match="does not open"):
        attack(blob)  # type: ignore[operator]


@pytest.mark.parametrize("text", ["", "ed25519:AAAA", "x25519:not base64!", "x25519:" + "A" * 8])
def test_malformed_public_keys_are_refused(text: str) -> None:
    with pytest.raises(SealError):
        parse_public(text)


def test_oversized_values_are_refused() -> None:
    with pytest.raises(SealError, match="at most"):
        seal(public_text(KEY), "x" * (MAX_PLAINTEXT + 1), b"job_1")
