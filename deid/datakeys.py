"""Per-owner data keys: encryption at rest that an owner's exit can crypto-shred.

Everything an operator leaves inside the platform — quarantined results, the review gate's
copies — is sealed with AES-256-GCM under that operator's own data key. Destroying the key
makes every copy unreadable at once, including copies in backups of the data directories,
which a deletion alone could never reach. The keys live in a SQLite file of their own,
meant to sit apart from the data it protects (its own volume or a KMS in production) and
never to be backed up with it.

Destroying a key overwrites it in the file (``secure_delete``) and truncates the write-ahead
log, so no page of the file keeps the key bytes; a tombstone keeps the key's id, owner and
fingerprint for the exit report and the ledger. An owner whose key was destroyed cannot
seal anything more until :meth:`DataKeys.renew` issues a new key (a later authorization),
so a job still running when its operator exits fails closed instead of writing readable data.

A sealed blob names its owner and key id, so it opens without being told whose it is::

    b"VBXK1" | owner length (1 byte) | owner | key id (16 bytes) | nonce (12) | ciphertext

The associated data binds the header and a caller's ``context`` (a job id and file name),
so a blob moved to another job or file does not open.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deid.errors import DataKeyError, KeyDestroyed
from deid.sqlite_store import SqliteStore
from ledger import Ledger

MAGIC = b"VBXK1"
_KEY_ID = 16
_NONCE = 12
_MAX_OWNER = 64
_SCHEMA = (
    "CREATE TABLE data_keys (key_id BLOB PRIMARY KEY, owner TEXT NOT NULL, key BLOB, "
    "fingerprint TEXT NOT NULL, created_at TEXT NOT NULL, destroyed_at TEXT, reason TEXT)",
    "CREATE INDEX data_keys_owner ON data_keys (owner, created_at)",
)


@dataclass(frozen=True)
class KeyRecord:
    """A data key's identity and state: never the key itself."""

    key_id: str
    owner: str
    fingerprint: str
    created_at: str
    destroyed_at: str | None
    reason: str | None


class DataKeys:
    """The data-key store: seal and open blobs per owner, destroy an owner's keys."""

    def __init__(self, path: Path, ledger: Ledger) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._store = SqliteStore(path, what="data-key store", error=DataKeyError, schema=_SCHEMA)
        # Deleted content is overwritten with zeros, so a destroyed key leaves no bytes behind.
        self._store.db.execute("PRAGMA secure_delete = ON")
        os.chmod(path, 0o600)
        self._ledger = ledger

    def close(self) -> None:
        self._store.close()

    def seal(self, owner: str, data: bytes, context: str) -> bytes:
        """Encrypt ``data`` under ``owner``'s live key, creating its first key if it has none.

        Raises KeyDestroyed if the owner's keys were destroyed and none was renewed since.
        """
        header_owner = _owner_bytes(owner)
        with self._store.transaction(write=True) as db:
            row = db.execute(
                "SELECT key_id, key FROM data_keys WHERE owner = ? ORDER BY created_at DESC, rowid DESC "
                "LIMIT 1",
                (owner,),
            ).fetchone()
            if row is None:
                key_id, key = self._issue(db, owner)
            elif row[1] is None:
                raise KeyDestroyed(
                    f"the data of {owner} was crypto-shredded when it exited: nothing more is kept for it "
                    "until a new authorization renews its data key"
                )
            else:
                key_id, key = bytes(row[0]), bytes(row[1])
        nonce = os.urandom(_NONCE)
        header = MAGIC + bytes([len(header_owner)]) + header_owner + key_id
        return header + nonce + AESGCM(key).encrypt(nonce, data, _aad(header, context))

    def open(self, blob: bytes, context: str) -> bytes:
        """Decrypt a sealed blob; KeyDestroyed if its key was destroyed, DataKeyError if it was
        altered, moved to another context, or is not a sealed blob."""
        header, key_id, nonce, ciphertext, owner = _parse(blob)
        with self._store.transaction() as db:
            row = db.execute("SELECT key, destroyed_at FROM data_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            raise KeyDestroyed(
                f"the key {key_id.hex()} of {owner} is not in this store: the data is unreadable"
            )
        if row[0] is None:
            raise KeyDestroyed(
                f"the data of {owner} was crypto-shredded on {row[1]}: its key no longer exists"
            )
        try:
            return AESGCM(bytes(row[0])).decrypt(nonce, ciphertext, _aad(header, context))
        except InvalidTag:
            raise DataKeyError(
                f"a blob sealed for {owner} does not open for {context}: it was altered or moved"
            ) from None

    def destroy(self, owner: str, *, actor: str, reason: str) -> list[KeyRecord]:
        """Destroy every live key of ``owner``; returns the tombstones, recorded as ``datakey.destroyed``.

        Destroying an owner with no live key changes nothing and records nothing.
        """
        _owner_bytes(owner)
        now = _now()
        with self._store.transaction(write=True) as db:
            live = [
                bytes(r[0])
                for r in db.execute(
                    "SELECT key_id FROM data_keys WHERE owner = ? AND key IS NOT NULL", (owner,)
                )
            ]
            if not live:
                return []
            db.execute(
                "UPDATE data_keys SET key = NULL, destroyed_at = ?, reason = ? "
                "WHERE owner = ? AND key IS NOT NULL",
                (now, reason, owner),
            )
            destroyed = [r for r in _records(db, owner) if bytes.fromhex(r.key_id) in live]
            self._ledger.append(
                actor,
                "datakey.destroyed",
                owner,
                {
                    "reason": reason,
                    "keys": [{"key_id": r.key_id, "fingerprint": r.fingerprint} for r in destroyed],
                },
            )
        # The old key pages may still sit in the write-ahead log until it is checkpointed away.
        self._store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return destroyed

    def renew(self, owner: str, *, actor: str) -> KeyRecord | None:
        """After an exit, issue ``owner`` a new key (it holds a new authorization), recorded as
        ``datakey.issued``; returns it. An owner with a live key, or none ever, is left as it is
        (its first seal issues one) and None is returned."""
        _owner_bytes(owner)
        with self._store.transaction(write=True) as db:
            records = _records(db, owner)
            if not records or any(r.destroyed_at is None for r in records):
                return None
            key_id, _ = self._issue(db, owner, actor=actor)
            return next(r for r in _records(db, owner) if r.key_id == key_id.hex())

    def records(self, owner: str) -> list[KeyRecord]:
        """Every key ``owner`` ever had, oldest first."""
        with self._store.transaction() as db:
            return _records(db, owner)

    def _issue(self, db: sqlite3.Connection, owner: str, *, actor: str = "enclave") -> tuple[bytes, bytes]:
        key_id, key = os.urandom(_KEY_ID), AESGCM.generate_key(bit_length=256)
        fingerprint = hashlib.sha256(b"veilbox data key fingerprint\0" + key).hexdigest()[:32]
        db.execute(
            "INSERT INTO data_keys (key_id, owner, key, fingerprint, created_at) VALUES (?, ?, ?, ?, ?)",
            (key_id, owner, key, fingerprint, _now()),
        )
        self._ledger.append(
            actor, "datakey.issued", owner, {"key_id": key_id.hex(), "fingerprint": fingerprint}
        )
        return key_id, key


def is_sealed(blob: bytes) -> bool:
    """Whether ``blob`` is a sealed blob (by its magic bytes)."""
    return blob.startswith(MAGIC)


def sealed_by(blob: bytes) -> tuple[str, str]:
    """The owner and key id (hex) a sealed blob names in its header, unverified until it opens;
    DataKeyError if it is not a sealed blob."""
    _, key_id, _, _, owner = _parse(blob)
    return owner, key_id.hex()


def _records(db: sqlite3.Connection, owner: str) -> list[KeyRecord]:
    rows = db.execute(
        "SELECT key_id, owner, fingerprint, created_at, destroyed_at, reason FROM data_keys "
        "WHERE owner = ? ORDER BY created_at, rowid",
        (owner,),
    )
    return [KeyRecord(bytes(r[0]).hex(), *r[1:]) for r in rows]


def _parse(blob: bytes) -> tuple[bytes, bytes, bytes, bytes, str]:
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 1:
        raise DataKeyError("this is not a sealed blob: it lacks the data-key header")
    size = blob[len(MAGIC)]
    end = len(MAGIC) + 1 + size
    header = blob[: end + _KEY_ID]
    if len(blob) < end + _KEY_ID + _NONCE + 16:
        raise DataKeyError("the sealed blob is truncated")
    owner = blob[len(MAGIC) + 1 : end].decode("utf-8", "replace")
    key_id, nonce = blob[end : end + _KEY_ID], blob[end + _KEY_ID : end + _KEY_ID + _NONCE]
    return header, key_id, nonce, blob[end + _KEY_ID + _NONCE :], owner


def _owner_bytes(owner: str) -> bytes:
    encoded = owner.encode("utf-8") if isinstance(owner, str) else b""
    if not encoded or len(encoded) > _MAX_OWNER:
        raise DataKeyError(f"a data key's owner must be 1-{_MAX_OWNER} bytes of text, not {owner!r:.80}")
    return encoded


def _aad(header: bytes, context: str) -> bytes:
    return header + b"\0" + context.encode("utf-8")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
