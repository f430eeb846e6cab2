"""Sealed inputs: raw values a caller hands to the enclave that nothing on the way may keep.

A verification names its subject by the raw identifier; the service that receives the
request must store it until the enclave's job runner takes it, and must not be able to
read it back. It therefore seals the value at once to the enclave's input key with HPKE
(RFC 9180: X25519, HKDF-SHA256, AES-256-GCM, base mode) and stores only the sealed bytes.
The ``context`` (e.g. the job id) is bound into the encryption, so a sealed value copied
into another job does not open there.

The key pair is derived from the enclave master key; only the public half leaves the
enclave, as text ``x25519:BASE64``.

>>> from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
>>> key = X25519PrivateKey.generate()
>>> blob = seal(public_text(key), "91350100M000100Y43", b"job_1")
>>> unseal(key, blob, b"job_1")
'91350100M000100Y43'
"""

from __future__ import annotations

import base64

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from deid.errors import DeidError

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
PREFIX = "x25519:"
_INFO = b"veilbox/sealed-input/v1:"
MAX_PLAINTEXT = 4096


class SealError(DeidError):
    """A sealed value cannot be made or opened: wrong key, wrong context, or altered bytes."""


def public_text(key: X25519PrivateKey) -> str:
    """The public half of ``key`` as ``x25519:BASE64``, for publishing."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public(text: str) -> X25519PublicKey:
    """A published input key; SealError if ``text`` is not one."""
    if not isinstance(text, str) or not text.startswith(PREFIX):
        raise SealError(f"an input key is written {PREFIX}BASE64")
    try:
        return X25519PublicKey.from_public_bytes(base64.b64decode(text[len(PREFIX) :], validate=True))
    except ValueError:
        raise SealError("the input key is not 32 bytes of base64") from None


def seal(public_key: str, value: str, context: bytes) -> bytes:
    """``value`` encrypted to the enclave's input key, bound to ``context``."""
    data = value.encode("utf-8")
    if len(data) > MAX_PLAINTEXT:
        raise SealError(f"a sealed input is at most {MAX_PLAINTEXT} bytes")
    return bytes(SUITE.encrypt(data, parse_public(public_key), _INFO + context))


def unseal(key: X25519PrivateKey, blob: bytes, context: bytes) -> str:
    """The value sealed in ``blob`` for ``context``; SealError if it does not open."""
    try:
        return bytes(SUITE.decrypt(blob, key, _INFO + context)).decode("utf-8")
    except (InvalidTag, ValueError, UnicodeDecodeError):
        raise SealError("the sealed input does not open: it was altered, or sealed for another job") from None
