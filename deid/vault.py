"""The identifier vault: the only place raw identifiers survive, encrypted, inside the enclave.

Each (join domain, pseudonym) maps to the raw identifier encrypted with AES-256-GCM under
a key derived from the enclave master key; the domain and pseudonym are the associated
data, so a ciphertext moved to another row does not decrypt. The vault is a SQLite file
of its own: SQL and model jobs run on DuckDB connections that cannot open files, so only
the enclave's own PSI and verification services can read it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deid.errors import VaultError
from deid.keys import MasterKey
from deid.sqlite_store import SqliteStore

_NONCE = 12
_SCHEMA = (
    "CREATE TABLE identities (domain TEXT NOT NULL, pseudonym TEXT NOT NULL, "
    "nonce BLOB NOT NULL, ciphertext BLOB NOT NULL, PRIMARY KEY (domain, pseudonym))",
)


class IdentifierVault:
    """Encrypted pseudonym → raw identifier store."""

    def __init__(self, path: Path, master: MasterKey) -> None:
        self._aead = AESGCM(master.derive("vault"))
        self._store = SqliteStore(path, what="identifier vault", error=VaultError, schema=_SCHEMA)
        self._db = self._store.db
        os.chmod(path, 0o600)

    def close(self) -> None:
        self._store.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes so an ingest that fails leaves the vault as it was."""
        with self._store.transaction(write=True):
            yield

    def store(self, domain: str, pseudonyms: Sequence[str], raw: Sequence[str]) -> int:
        """Store raw identifiers under their pseudonyms, keeping known ones; returns how many were new."""
        before = self._db.total_changes
        self._db.executemany(
            "INSERT OR IGNORE INTO identities VALUES (?, ?, ?, ?)",
            (self._seal(domain, p, v) for p, v in zip(pseudonyms, raw, strict=True)),
        )
        return self._db.total_changes - before

    def _seal(self, domain: str, pseudonym: str, value: str) -> tuple[str, str, bytes, bytes]:
        nonce = os.urandom(_NONCE)
        return domain, pseudonym, nonce, self._aead.encrypt(nonce, value.encode(), _aad(domain, pseudonym))

    def reveal(self, domain: str, pseudonym: str) -> str:
        """The raw identifier behind a pseudonym (enclave services only)."""
        row = self._db.execute(
            "SELECT nonce, ciphertext FROM identities WHERE domain = ? AND pseudonym = ?", (domain, pseudonym)
        ).fetchone()
        if row is None:
            raise VaultError(f"no identifier is stored for {pseudonym} in join domain {domain!r}")
        return self._decrypt(domain, pseudonym, row[0], row[1])

    def members(self, domain: str) -> Iterator[tuple[str, str]]:
        """Every (pseudonym, raw identifier) of a join domain, for PSI inside the enclave."""
        cursor = self._db.execute(
            "SELECT pseudonym, nonce, ciphertext FROM identities WHERE domain = ?", (domain,)
        )
        for pseudonym, nonce, ciphertext in cursor:
            yield pseudonym, self._decrypt(domain, pseudonym, nonce, ciphertext)

    def count(self, domain: str) -> int:
        return int(
            self._db.execute("SELECT COUNT(*) FROM identities WHERE domain = ?", (domain,)).fetchone()[0]
        )

    def _decrypt(self, domain: str, pseudonym: str, nonce: bytes, ciphertext: bytes) -> str:
        try:
            return self._aead.decrypt(nonce, ciphertext, _aad(domain, pseudonym)).decode()
        except InvalidTag:
            raise VaultError(
                f"the vault entry for {pseudonym} in {domain!r} fails authentication: it was altered "
                "or moved, or the enclave key is not the one that wrote it"
            ) from None


def _aad(domain: str, pseudonym: str) -> bytes:
    return f"{domain}\0{pseudonym}".encode()
