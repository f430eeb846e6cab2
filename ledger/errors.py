"""The root of every Veilbox error, and the errors raised by the ledger.

Every package may depend on the ledger and the ledger on none of them, so the platform's
root lives here and each package hangs its own tree beneath it::

    VeilboxError                anything Veilbox refuses or cannot do
    ├── (sandbox.errors, deid.errors, … : each package's tree)
    └── LedgerError             anything the ledger refuses or cannot do
        ├── EntryError              an entry cannot be written: not JSON, too large, bad field
        ├── NotALedgerError         a path is not a ledger directory (or not ours)
        ├── LedgerCorruptError      stored data fails its own checks beyond what recovery repairs
        ├── LedgerKeyError          the signing key file is missing, unreadable or too open
        ├── CheckpointError         a checkpoint or signed note is malformed or its signature fails
        ├── ProofError              a proof was asked for sizes or indices the log does not have
        └── LedgerIOError           the operating system refused a read or write

Every message says what was wrong and what to do about it.
"""

from __future__ import annotations


class VeilboxError(Exception):
    """Root of every error Veilbox raises; its message says what was wrong and what to do."""


class LedgerError(VeilboxError):
    """Root of every error the ledger raises."""


class EntryError(LedgerError, ValueError):
    """An entry was refused before anything was written."""


class NotALedgerError(LedgerError):
    """The path does not hold a ledger."""


class LedgerCorruptError(LedgerError):
    """Stored ledger data is damaged in a way that recovery must not paper over."""


class LedgerKeyError(LedgerError):
    """The ledger's signing key cannot be used."""


class CheckpointError(LedgerError):
    """A checkpoint or signed note is malformed, or its signature does not verify."""


class ProofError(LedgerError, ValueError):
    """A proof was requested for an index or size the log does not hold."""


class LedgerIOError(LedgerError):
    """The operating system refused an operation; nothing acknowledged was lost."""
