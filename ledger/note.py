"""C2SP signed notes with Ed25519 keys, and the tlog checkpoints they carry.

A signed note is a UTF-8 text ending in a newline, a blank line, then one line per
signature: ``— <key name> <base64(key ID ‖ signature)>``. The key ID is the first four
bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key), 0x01 naming Ed25519, so notes written
here open with Go's ``golang.org/x/mod/sumdb/note`` and the other C2SP implementations.

A checkpoint (C2SP tlog-checkpoint) is the note text ``<origin>\\n<size>\\n<base64 root>\\n``
plus optional extension lines. A :class:`Checkpoint` object exists only once its signature
has verified (or because this process just signed it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.errors import CheckpointError

ALG_ED25519 = 0x01
_SIG_PREFIX = "\u2014 "
_MAX_SIGNATURES = 100
_NAME_RE = re.compile(r"[^\s+]+\Z")
_SIZE_RE = re.compile(r"(0|[1-9][0-9]{0,19})\Z")


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte C2SP key ID of an Ed25519 key."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def check_key_name(name: str) -> str:
    """Return ``name`` if it may name a note key (non-empty, no spaces, no '+'), else raise."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or not name.isprintable():
        raise CheckpointError(
            f"key name {name!r} is not usable: it must be non-empty printable text without spaces or '+'"
        )
    return name


@dataclass(frozen=True)
class PublicKey:
    """A named Ed25519 verifier key: what an auditor pins to check checkpoints."""

    name: str
    raw: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not isinstance(self.raw, bytes) or len(self.raw) != 32:
            raise CheckpointError("an Ed25519 public key is exactly 32 bytes")

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.raw)

    @property
    def vkey(self) -> str:
        """The note verifier key string: ``<name>+<hex key ID>+<base64(0x01 ‖ key)>``."""
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.raw).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, text: str) -> PublicKey:
        """Parse a verifier key string, checking its key ID matches its name and key."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise CheckpointError("a verifier key has the form <name>+<key id hex>+<base64 key>")
        name, hash_hex, encoded = parts
        try:
            blob = base64.b64decode(encoded, validate=True)
            wanted = bytes.fromhex(hash_hex)
        except (binascii.Error, ValueError):
            raise CheckpointError("the verifier key's key ID or key is not valid hex/base64") from None
        if len(hash_hex) != 8 or len(blob) != 33 or blob[0] != ALG_ED25519:
            raise CheckpointError("the verifier key is not an Ed25519 note key")
        key = cls(name, blob[1:])
        if key.key_id != wanted:
            raise CheckpointError("the verifier key's key ID does not match its name and key")
        return key

    @classmethod
    def from_private(cls, name: str, private_key: Ed25519PrivateKey) -> PublicKey:
        raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(name, raw)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``text`` (which must end in a newline) as a single-signature note."""
    _check_text(text)
    check_key_name(name)
    public = PublicKey.from_private(name, private_key)
    signature = private_key.sign(text.encode())
    blob = base64.b64encode(public.key_id + signature).decode()
    return f"{text}\n{_SIG_PREFIX}{name} {blob}\n"


def open_note(note: str, key: PublicKey) -> str:
    """Return the text of ``note`` after checking ``key``'s signature on it.

    Raises CheckpointError when the note is malformed, carries no signature by ``key``,
    or that signature does not verify.
    """
    if not isinstance(note, str):
        raise CheckpointError("a signed note is text")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise CheckpointError("malformed note: no blank line before the signature lines")
    text, signature_block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    lines = signature_block.split("\n")[:-1]
    if not lines or len(lines) > _MAX_SIGNATURES:
        raise CheckpointError(f"malformed note: expected 1 to {_MAX_SIGNATURES} signature lines")
    found = False
    for line in lines:
        name, blob = _parse_signature_line(line)
        if name != key.name or blob[:4] != key.key_id:
            continue
        if not key.verify(text.encode(), blob[4:]):
            raise CheckpointError(f"invalid signature for key {key.name}+{key.key_id.hex()}")
        found = True
    if not found:
        raise CheckpointError(f"the note carries no signature by key {key.name}+{key.key_id.hex()}")
    return text


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint whose signature has been verified (or was made here)."""

    origin: str
    size: int
    root: bytes
    note: str

    @property
    def body(self) -> str:
        return checkpoint_body(self.origin, self.size, self.root)


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The unsigned checkpoint text for a tree."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_checkpoint(
    origin: str, size: int, root: bytes, name: str, private_key: Ed25519PrivateKey
) -> Checkpoint:
    """Sign a checkpoint for a tree of ``size`` leaves with root ``root``."""
    check_origin(origin)
    note = sign_note(checkpoint_body(origin, size, root), name, private_key)
    return Checkpoint(origin, size, root, note)


def open_checkpoint(note: str, key: PublicKey, *, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint with ``key`` and parse it.

    With ``origin``, the checkpoint must name that log. Raises CheckpointError otherwise.
    """
    text = open_note(note, key)
    lines = text.split("\n")[:-1]
    if len(lines) < 3 or any(not line for line in lines):
        raise CheckpointError("malformed checkpoint: expected origin, size and root lines")
    found_origin, size_text, root_text = lines[:3]
    if origin is not None and found_origin != origin:
        raise CheckpointError(f"checkpoint is for log {found_origin!r}, not {origin!r}")
    if not _SIZE_RE.match(size_text):
        raise CheckpointError("malformed checkpoint: tree size is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        root = b""
    if len(root) != 32:
        raise CheckpointError("malformed checkpoint: root is not a base64 SHA-256 hash")
    return Checkpoint(found_origin, int(size_text), root, note)


def check_origin(origin: str) -> str:
    """Return ``origin`` if it can head a checkpoint (no spaces, no '+'), else raise."""
    try:
        return check_key_name(origin)
    except CheckpointError:
        raise CheckpointError(
            f"log origin {origin!r} is not usable: it must be non-empty printable text "
            "without spaces or '+', e.g. 'ledger.example.gov.cn/city'"
        ) from None


def _check_text(text: str) -> None:
    if not text.endswith("\n") or any(ch < " " and ch != "\n" for ch in text):
        raise CheckpointError("malformed note: text must end in a newline and hold no control characters")


def _parse_signature_line(line: str) -> tuple[str, bytes]:
    if not line.startswith(_SIG_PREFIX):
        raise CheckpointError("malformed note: a signature line must start with '\u2014 '")
    name, _, encoded = line[len(_SIG_PREFIX) :].partition(" ")
    try:
        check_key_name(name)
        blob = base64.b64decode(encoded, validate=True)
    except (CheckpointError, binascii.Error):
        raise CheckpointError("malformed note: unreadable signature line") from None
    if len(blob) < 5:
        raise CheckpointError("malformed note: signature too short")
    return name, blob
