"""Errors raised by the enclave.

::

    VeilboxError (ledger.errors)
    └── SandboxError            anything the enclave refuses or cannot do
        ├── PolicyViolation     a query refused by a policy rule: carries the rule id and fragment
        │   └── UnsupportedOnBackend  allowed, but its engine cannot run it exactly as DuckDB would (S-*)
        ├── CatalogError        unknown dataset or column, duplicate name, bad tag or bounds
        ├── IngestError         a file cannot be ingested; nothing was stored
        ├── JobError            a job failed while running; the worker pool survives
        │   ├── JobTimeout      it ran past its wall-time limit
        │   ├── JobResourceError it ran past its memory or CPU limit
        │   └── JobRefused      refused as it ran (rule id): data it reads was shredded or is damaged
        ├── ConfinementError    a confined (Python) job cannot run safely here, so it is refused
        ├── BackendError        the configured query engine is unusable (bad backend.json, no pyspark or Java)
        └── VerificationError   a verification template, parameter, subject or rate limit is unusable
"""

from __future__ import annotations

from ledger.errors import VeilboxError


class SandboxError(VeilboxError):
    """Root of the enclave's errors."""


class PolicyViolation(SandboxError):
    """A query was refused before any data was touched.

    ``rule`` is the stable id of the rule that refused it (e.g. ``P-IDENT-FILTER``) and
    ``fragment`` the offending part of the SQL.
    """

    def __init__(self, rule: str, message: str, fragment: str = "") -> None:
        self.rule = rule
        self.fragment = fragment
        self.reason = message
        detail = f": {fragment}" if fragment else ""
        super().__init__(f"[{rule}] {message}{detail}")


class UnsupportedOnBackend(PolicyViolation):
    """A query the policy allows, refused because the configured engine would compute it differently.

    ``rule`` is an ``S-*`` id of :data:`sandbox._spark_sql.SPARK_RULES`; rewrite the query
    (the message says how) or run it on a DuckDB deployment.
    """


class CatalogError(SandboxError):
    """The catalog cannot do what was asked."""


class IngestError(SandboxError):
    """A dataset could not be ingested; the enclave and catalog are unchanged."""


class JobError(SandboxError):
    """A job failed while running."""


class JobTimeout(JobError):
    """A job ran past its wall-time limit and was interrupted."""


class JobResourceError(JobError):
    """A job ran past its memory or CPU limit."""


class JobRefused(JobError):
    """A job passed its policy check but is refused when its data is opened, before the engine
    reads any of it: a dataset it reads was crypto-shredded or fails its integrity check.

    ``rule`` is the stable id of the refusal (e.g. ``D-SHREDDED``); jobs record it as refused.
    """

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(message)


class ConfinementError(SandboxError):
    """Confinement for Python jobs is unavailable; such jobs are refused, never run unconfined."""


class BackendError(SandboxError):
    """The deployment's query engine cannot be used as configured; the message says what to install or fix."""


class VerificationError(SandboxError):
    """A verification template or rate limit is misconfigured, or a request's value is unusable."""
