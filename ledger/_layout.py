"""What a ledger directory holds, how it is created, and the file primitives the store uses.

A ledger directory holds::

    ledger.json     format and origin (its presence makes the directory a ledger)
    entries.jsonl   the entries, one canonical JSON object per line: the source of truth
    entries.idx     derived: the end offset of each entry (8 bytes little-endian each)
    tree.nodes      derived: every complete subtree hash, post-order (see _compact)
    signing.key     Ed25519 private key, mode 0600
    public.vkey     the matching note verifier key, for auditors
    checkpoint      the latest signed checkpoint
    lock            target of the exclusive flock that orders all writers
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger._fs import atomic_write
from ledger._keys import create_signing_key, load_signing_key
from ledger.errors import LedgerIOError, NotALedgerError
from ledger.note import PublicKey, check_origin

FORMAT = "veilbox-ledger/1"
META_FILE = "ledger.json"
LOG_FILE = "entries.jsonl"
INDEX_FILE = "entries.idx"
NODES_FILE = "tree.nodes"
KEY_FILE = "signing.key"
PUBLIC_KEY_FILE = "public.vkey"
CHECKPOINT_FILE = "checkpoint"
LOCK_FILE = "lock"
OWN_NAMES = {
    META_FILE,
    LOG_FILE,
    INDEX_FILE,
    NODES_FILE,
    KEY_FILE,
    PUBLIC_KEY_FILE,
    CHECKPOINT_FILE,
    LOCK_FILE,
}


def prepare_directory(root: Path) -> None:
    """Create ``root`` if needed; refuse a file or a directory holding anything not ours."""
    if root.exists() and not root.is_dir():
        raise NotALedgerError(f"{root} is a file, not a ledger directory")
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        foreign = sorted(
            p.name for p in root.iterdir() if p.name not in OWN_NAMES and not p.name.startswith(".")
        )
    except OSError as exc:
        raise LedgerIOError(f"cannot create or list {root}: {exc.strerror}") from None
    if foreign:
        raise NotALedgerError(f"{root} is not a ledger: it holds {', '.join(foreign[:3])} and no {META_FILE}")


def init_or_load(root: Path, origin: str | None) -> tuple[str, Ed25519PrivateKey]:
    """Create the ledger's description and key on first use, or load and check them (lock held)."""
    meta_path = root / META_FILE
    if not meta_path.exists():
        origin = origin or f"veilbox.local/ledger-{secrets.token_hex(4)}"
        key_path = root / KEY_FILE
        key = load_signing_key(key_path) if key_path.exists() else create_signing_key(key_path)
        vkey = PublicKey.from_private(origin, key).vkey
        atomic_write(root / PUBLIC_KEY_FILE, vkey.encode() + b"\n")
        meta = {"format": FORMAT, "origin": origin}
        atomic_write(meta_path, json.dumps(meta, indent=2).encode() + b"\n")
        return origin, key
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        found, found_origin = meta["format"], meta["origin"]
    except (OSError, ValueError, KeyError, TypeError):
        raise NotALedgerError(f"{meta_path} is not a readable ledger description") from None
    if found != FORMAT:
        raise NotALedgerError(f"{root} holds ledger format {found!r}; this version reads {FORMAT!r}")
    if origin is not None and origin != found_origin:
        raise NotALedgerError(f"{root} is the ledger {found_origin!r}, not {origin!r}")
    return check_origin(found_origin), load_signing_key(root / KEY_FILE)


@contextmanager
def exclusive(fd: int) -> Iterator[None]:
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def pwrite(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        with suppress(OSError):
            os.close(fd)
