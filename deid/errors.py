"""Errors raised by de-identification and privacy computing.

::

    VeilboxError (ledger.errors)
    └── DeidError               anything deid refuses or cannot do
        ├── KeyMaterialError    an enclave key is missing, unreadable or too open
        ├── VaultError          the identifier vault cannot be read or written
        ├── DataKeyError        a data key or sealed blob cannot be used
        │   └── KeyDestroyed    the data was crypto-shredded: its owner's key was destroyed
        ├── PsiError            a private set intersection message or request is refused
        ├── AnonymityNotMet     a record-level product cannot reach its k (or l) within budget
        ├── BudgetError         a privacy budget value or operation is invalid
        │   └── BudgetExceeded  a job would overspend or has no budget: refused, nothing charged
        └── ConsentError        a consent credential is malformed, unverifiable or cannot be stored
"""

from __future__ import annotations

from ledger.errors import VeilboxError


class DeidError(VeilboxError):
    """Root of deid's errors."""


class KeyMaterialError(DeidError):
    """An enclave key cannot be used."""


class VaultError(DeidError):
    """The identifier vault cannot be read or written."""


class DataKeyError(DeidError):
    """A data key cannot be issued or used, or a sealed blob is altered, moved or malformed."""


class KeyDestroyed(DataKeyError):
    """The data was crypto-shredded: the key it was sealed under was destroyed."""


class PsiError(DeidError):
    """A private set intersection cannot go ahead: a malformed or oversized message, or a refused request."""


class AnonymityNotMet(DeidError):
    """A record-level product cannot reach the required k-anonymity (or l-diversity)."""


class BudgetError(DeidError):
    """A privacy budget cannot be set, read or charged as asked."""


class BudgetExceeded(BudgetError):
    """A job's privacy cost does not fit what remains (or no budget was set); nothing was charged."""


class ConsentError(DeidError):
    """A consent credential is malformed, fails its signature check, or cannot be recorded or revoked."""
