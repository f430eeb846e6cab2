"""Errors raised by the outbound-review gate.

::

    VeilboxError (ledger.errors)
    └── ReviewError         anything the review gate refuses or cannot do; also a result, its
        │                   evidence or a mitigation request that cannot be checked as given
        ├── ReviewRefused   a review decision breaks a queue rule (named by its id)
        └── ReleaseInvalid  a release folder, its manifest or its signature does not hold
"""

from __future__ import annotations

from ledger.errors import VeilboxError


class ReviewError(VeilboxError):
    """Root of the review gate's errors."""


class ReviewRefused(ReviewError):
    """A review decision was refused; ``rule`` is the stable id of the rule (e.g. ``R-STATE``)."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        self.reason = message
        super().__init__(f"[{rule}] {message}")


class ReleaseInvalid(ReviewError):
    """A release does not verify: a file was altered or the manifest signature fails."""
