"""Errors raised by de-identification and privacy computing.

::

    VeilboxError (ledger.errors)
    └── DeidError               anything deid refuses or cannot do
        ├── KeyMaterialError    an enclave key is missing, unreadable or too open
        └── VaultError          the identifier vault cannot be read or written
"""

from __future__ import annotations

from ledger.errors import VeilboxError


class DeidError(VeilboxError):
    """Root of deid's errors."""


class KeyMaterialError(DeidError):
    """An enclave key cannot be used."""


class VaultError(DeidError):
    """The identifier vault cannot be read or written."""
