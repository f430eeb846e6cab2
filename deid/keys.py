"""The enclave's master key and the purpose-bound keys derived from it.

One random 256-bit master key lives in the enclave directory (mode 0600) and never leaves
it; it is never written to the ledger. Every use gets its own key through HKDF-SHA256
with a purpose label, so a pseudonym key cannot decrypt the vault and the pseudonyms of
one join domain say nothing about another's.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from deid.errors import KeyMaterialError

KEY_BYTES = 32


class MasterKey:
    """The enclave master key; derive purpose keys with :meth:`derive`."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_BYTES:
            raise KeyMaterialError(f"an enclave master key is {KEY_BYTES} bytes, not {len(secret)}")
        self._secret = secret

    def derive(self, purpose: str) -> bytes:
        """A 256-bit key for one purpose, e.g. ``pseudonym/person`` or ``vault``."""
        return HKDF(
            algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=f"veilbox/{purpose}".encode()
        ).derive(self._secret)

    def __repr__(self) -> str:
        return "MasterKey(<secret>)"

    @classmethod
    def load_or_create(cls, path: Path) -> MasterKey:
        """Load the key at ``path``, creating it (0600, via a private temporary file) if absent."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secrets.token_bytes(KEY_BYTES))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                with contextlib.suppress(FileExistsError):  # a concurrent creator's key wins
                    os.link(tmp, path)
            finally:
                tmp.unlink()
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            secret = path.read_bytes()
        except OSError as exc:
            raise KeyMaterialError(f"the enclave key {path} cannot be read: {exc.strerror}") from None
        if mode & 0o077:
            raise KeyMaterialError(
                f"the enclave key {path} is readable by other users (mode {mode:o}); run 'chmod 600 {path}'"
            )
        if len(secret) != KEY_BYTES:
            raise KeyMaterialError(
                f"the enclave key {path} is damaged ({len(secret)} bytes); restore it from backup"
            )
        return cls(secret)
