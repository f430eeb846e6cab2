"""The ledger's Ed25519 signing key: created once, kept private to the ledger directory."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from ledger._fs import atomic_write
from ledger.errors import LedgerKeyError


def create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Generate a key and store it (PKCS#8 PEM, mode 0600) at ``path``."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    atomic_write(path, pem, mode=0o600)
    return key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load the key at ``path``, refusing one that others can read or that is not Ed25519."""
    try:
        mode = path.stat().st_mode
        pem = path.read_bytes()
    except FileNotFoundError:
        raise LedgerKeyError(
            f"signing key {path} is missing; restore it from backup (a new key would not "
            "match the checkpoints auditors hold)"
        ) from None
    except OSError as exc:
        raise LedgerKeyError(f"signing key {path} cannot be read: {exc.strerror}") from None
    if stat.S_IMODE(mode) & 0o077:
        raise LedgerKeyError(
            f"signing key {path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
            f"run 'chmod 600 {path}' after checking nobody copied it"
        )
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise LedgerKeyError(
            f"signing key {path} is corrupted or not an unencrypted PEM private key; restore it from backup"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerKeyError(f"signing key {path} is not an Ed25519 key")
    return key
