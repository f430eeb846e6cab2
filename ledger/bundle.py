"""Self-contained proof bundles: what an auditor downloads and checks offline.

An inclusion bundle carries one entry, its inclusion proof and the signed checkpoint it
is proven against; a consistency bundle carries two signed checkpoints and the proof that
the newer log extends the older. Checking either needs only the bundle and the log's
public key — no access to the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from ledger import merkle
from ledger._store import Ledger
from ledger.entry import Entry
from ledger.errors import LedgerCorruptError, ProofError
from ledger.note import Checkpoint, PublicKey, open_checkpoint

T = TypeVar("T")


def inclusion_bundle(log: Ledger, index: int, checkpoint: Checkpoint) -> dict[str, Any]:
    """A bundle proving entry ``index`` is in the tree ``checkpoint`` signs."""
    if not 0 <= index < checkpoint.size:
        raise ProofError(f"entry {index} is not covered by the checkpoint of size {checkpoint.size}")
    entry = log.entry(index)
    return {
        "type": "inclusion",
        "origin": log.origin,
        "index": index,
        "size": checkpoint.size,
        "entry": entry.raw.decode("utf-8"),
        "leaf_hash": entry.leaf_hash.hex(),
        "proof": [p.hex() for p in log.inclusion_proof(index, checkpoint.size)],
        "checkpoint": checkpoint.note,
    }


def consistency_bundle(log: Ledger, old: Checkpoint, new: Checkpoint) -> dict[str, Any]:
    """A bundle proving the tree ``new`` signs extends the tree ``old`` signs."""
    if old.size > new.size:
        raise ProofError(f"the older checkpoint (size {old.size}) is larger than the newer ({new.size})")
    return {
        "type": "consistency",
        "origin": log.origin,
        "old_size": old.size,
        "new_size": new.size,
        "proof": [p.hex() for p in log.consistency_proof(old.size, new.size)],
        "old_checkpoint": old.note,
        "checkpoint": new.note,
    }


def verify_bundle(bundle: Mapping[str, Any], key: PublicKey) -> str:
    """Check a bundle with only the log's public key; returns a one-line account of what it proves.

    Raises CheckpointError if a signature fails, ProofError if the bundle is malformed or
    its proof does not hold.
    """
    kind = _field(bundle, "type", str)
    checkpoint = open_checkpoint(_field(bundle, "checkpoint", str), key)
    hex_proof = _field(bundle, "proof", list)
    try:
        proof = [bytes.fromhex(p) for p in hex_proof]
    except (TypeError, ValueError):
        raise ProofError("the bundle's proof is not a list of hex hashes") from None
    if kind == "inclusion":
        return _verify_inclusion(bundle, checkpoint, proof)
    if kind == "consistency":
        old = open_checkpoint(_field(bundle, "old_checkpoint", str), key, origin=checkpoint.origin)
        if not merkle.verify_consistency(old.size, checkpoint.size, old.root, checkpoint.root, proof):
            raise ProofError(
                f"the consistency proof from size {old.size} to {checkpoint.size} does not verify: "
                "the newer log does not extend the older (a fork or rewrite)"
            )
        return f"log {checkpoint.origin} at size {checkpoint.size} extends its checkpoint at size {old.size}"
    raise ProofError(f"unknown bundle type {kind!r}; expected 'inclusion' or 'consistency'")


def _verify_inclusion(bundle: Mapping[str, Any], checkpoint: Checkpoint, proof: list[bytes]) -> str:
    raw = _field(bundle, "entry", str).encode("utf-8")
    try:
        entry = Entry.parse(raw)
    except LedgerCorruptError as exc:
        raise ProofError(f"the bundled entry is not a valid ledger entry: {exc}") from None
    if not merkle.verify_inclusion(raw, entry.index, checkpoint.size, proof, checkpoint.root):
        raise ProofError(
            f"the inclusion proof for entry {entry.index} does not verify against the checkpoint "
            f"of size {checkpoint.size}"
        )
    return (
        f"entry {entry.index} ({entry.action} by {entry.actor} on {entry.subject} at {entry.time}) "
        f"is in log {checkpoint.origin} at size {checkpoint.size}"
    )


def _field(bundle: Mapping[str, Any], name: str, kind: type[T]) -> T:
    value = bundle.get(name) if isinstance(bundle, Mapping) else None
    if not isinstance(value, kind):
        raise ProofError(f"the bundle's {name!r} is missing or not a {kind.__name__}")
    return value
