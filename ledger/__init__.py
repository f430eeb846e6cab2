"""The Veilbox ledger: an append-only, hash-chained Merkle log with signed checkpoints.

Every operation on the platform is an entry. Entries are canonical JSON chained by
``prev`` hashes inside an RFC 6962 Merkle tree; checkpoints are C2SP signed notes; an
auditor verifies the whole log offline with :func:`verify_log` (``veilbox ledger verify``).
This package imports nothing else of Veilbox.
"""

from ledger import merkle
from ledger._store import Ledger, Receipt
from ledger.entry import MAX_ENTRY_BYTES, Entry, canonical_json
from ledger.errors import (
    CheckpointError,
    EntryError,
    LedgerCorruptError,
    LedgerError,
    LedgerIOError,
    LedgerKeyError,
    NotALedgerError,
    ProofError,
    VeilboxError,
)
from ledger.note import Checkpoint, PublicKey, open_checkpoint, open_note, sign_note
from ledger.verify import Failure, VerifyReport, verify_log

__all__ = [
    "MAX_ENTRY_BYTES",
    "Checkpoint",
    "CheckpointError",
    "Entry",
    "EntryError",
    "Failure",
    "Ledger",
    "LedgerCorruptError",
    "LedgerError",
    "LedgerIOError",
    "LedgerKeyError",
    "NotALedgerError",
    "ProofError",
    "PublicKey",
    "Receipt",
    "VeilboxError",
    "VerifyReport",
    "canonical_json",
    "merkle",
    "open_checkpoint",
    "open_note",
    "sign_note",
    "verify_log",
]
