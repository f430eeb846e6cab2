"""Consent credentials (授权凭证) and the registry that keeps them; no policy.

A :class:`Consent` records that a data subject (a person or an enterprise) allowed one
operator to run named verification templates about it until a given time. It names the
subject by its keyed pseudonym in a join domain, never by the raw identifier: callers
pseudonymize first with the enclave's :class:`deid.pseudonym.Pseudonymizer`, so neither
the registry file nor the ledger ever holds the identifier.

The issuing party (a notary platform, the subject's own app, a government service) may
sign the credential with Ed25519 over :meth:`Consent.payload`, the canonical JSON of every
other field. Once an issuer's public key is trusted by the registry, its credentials must
carry a valid signature: one that is missing, forged or no longer matches its fields (an
edited row) is refused when recorded and ignored when looked up. An issuer without a
trusted key vouches through the evidence reference alone.

The registry is a SQLite file (WAL, ``synchronous=FULL``); each write is one ``BEGIN
IMMEDIATE`` transaction with its ledger entry (``consent.issuer_trusted``,
``consent.recorded``, ``consent.revoked``) appended inside it, so every committed change
has its entry. Refused credentials are recorded as ``consent.refused``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from deid.errors import ConsentError
from deid.pseudonym import is_pseudonym
from deid.sqlite_store import SqliteStore
from ledger import Ledger, canonical_json

__all__ = ["FORMAT", "Consent", "ConsentError", "ConsentRegistry"]

FORMAT = "veilbox-consent/1"
"""Tag inside every signed payload, so a signature over some other JSON never passes as consent."""

_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}\Z")
_DOMAIN_RE = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
_MAX_EVIDENCE = 512
_SIGNATURE_BYTES = 64
_KEY_BYTES = 32
_SCHEMA_VERSION = 1
_SCHEMA = (
    "CREATE TABLE issuers (issuer TEXT PRIMARY KEY, public_key BLOB NOT NULL)",
    # body is the signed payload as recorded; the other columns only index it.
    "CREATE TABLE consents (consent_id TEXT PRIMARY KEY, subject TEXT NOT NULL, grantee TEXT NOT NULL, "
    "body TEXT NOT NULL, signature BLOB, revoked_at TEXT, revoked_reason TEXT)",
    "CREATE INDEX consents_by_subject ON consents (subject, grantee)",
)


@dataclass(frozen=True)
class Consent:
    """One consent credential; raises ConsentError if any field is malformed.

    ``scope`` holds the template ids consented to (kept sorted and unique), ``grantee``
    the operator allowed to ask, ``evidence`` a reference to the consent as given (a
    document number or a digest of the signed form — never the subject's identifier).
    Times must be timezone-aware and are kept in UTC; the consent holds from
    ``issued_at`` up to, not including, ``expires_at``.
    """

    consent_id: str
    domain: str
    subject: str
    scope: tuple[str, ...]
    grantee: str
    issuer: str
    issued_at: datetime
    expires_at: datetime
    evidence: str
    signature: bytes | None = None

    def __post_init__(self) -> None:
        for kind, value in (
            ("consent id", self.consent_id),
            ("grantee", self.grantee),
            ("issuer", self.issuer),
        ):
            _check_label(kind, value)
        if not isinstance(self.domain, str) or not _DOMAIN_RE.match(self.domain):
            raise ConsentError(f"join domain {self.domain!r:.80} must be lower-case letters, digits and _")
        if not isinstance(self.subject, str) or not is_pseudonym(self.subject):
            # The message never echoes the value: it may be the raw identifier itself.
            raise ConsentError("the subject must be its pseudonym (psn_…), never the raw identifier")
        if isinstance(self.scope, str) or not self.scope:
            raise ConsentError("the scope must name at least one template id")
        scope = tuple(sorted({_check_label("template id", t) for t in self.scope}))
        object.__setattr__(self, "scope", scope)
        object.__setattr__(self, "issued_at", _utc("issued_at", self.issued_at))
        object.__setattr__(self, "expires_at", _utc("expires_at", self.expires_at))
        if self.expires_at <= self.issued_at:
            raise ConsentError(f"consent {self.consent_id} expires before it is issued")
        if (
            not isinstance(self.evidence, str)
            or not self.evidence.strip()
            or len(self.evidence) > _MAX_EVIDENCE
        ):
            raise ConsentError(
                f"the evidence reference must be non-empty text of at most {_MAX_EVIDENCE} chars"
            )
        if self.signature is not None and (
            not isinstance(self.signature, bytes) or len(self.signature) != _SIGNATURE_BYTES
        ):
            raise ConsentError(f"an Ed25519 signature is {_SIGNATURE_BYTES} bytes")

    def fields(self) -> dict[str, Any]:
        """Every field but the signature, as JSON values (times in RFC 3339 UTC)."""
        return {
            "format": FORMAT,
            "consent_id": self.consent_id,
            "domain": self.domain,
            "subject": self.subject,
            "scope": list(self.scope),
            "grantee": self.grantee,
            "issuer": self.issuer,
            "issued_at": _rfc3339(self.issued_at),
            "expires_at": _rfc3339(self.expires_at),
            "evidence": self.evidence,
        }

    def payload(self) -> bytes:
        """The bytes an issuer signs: canonical JSON of :meth:`fields`."""
        return canonical_json(self.fields())

    def signed(self, key: Ed25519PrivateKey) -> Consent:
        """This consent with the issuer's Ed25519 signature over :meth:`payload`."""
        return replace(self, signature=key.sign(self.payload()))

    def signature_valid(self, public_key: bytes) -> bool:
        """Whether the signature is the holder of ``public_key`` (32 raw bytes) over these fields."""
        if self.signature is None:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(self.signature, self.payload())
        except (InvalidSignature, ValueError):
            return False
        return True

    def holds(self, template_id: str, operator: str, at: datetime) -> bool:
        """Whether this consent lets ``operator`` run ``template_id`` at ``at`` (revocation aside)."""
        at = _utc("at", at)
        return (
            template_id in self.scope and operator == self.grantee and self.issued_at <= at < self.expires_at
        )

    @classmethod
    def from_fields(cls, data: object, signature: bytes | None) -> Consent:
        """The consent :meth:`fields` describes; ConsentError if it is not one."""
        try:
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ConsentError(f"a consent credential must be in format {FORMAT}")
            return cls(
                **{
                    **{k: v for k, v in data.items() if k != "format"},
                    "scope": tuple(data["scope"]),
                    "issued_at": datetime.fromisoformat(data["issued_at"]),
                    "expires_at": datetime.fromisoformat(data["expires_at"]),
                    "signature": signature,
                }
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConsentError(f"a stored consent credential is malformed: {exc}") from None


class ConsentRegistry:
    """Recorded consents, their revocations and the issuers whose signatures are trusted.

    Safe across threads and processes; open one instance per process.
    """

    def __init__(self, path: Path, ledger: Ledger) -> None:
        self._ledger = ledger
        self._store = SqliteStore(
            path, what="consent registry", error=ConsentError, schema=_SCHEMA, version=_SCHEMA_VERSION
        )

    def close(self) -> None:
        """Close the registry; every change already returned is on disk."""
        self._store.close()

    def trust_issuer(self, issuer: str, public_key: bytes, actor: str) -> None:
        """Trust ``issuer``'s Ed25519 key (32 raw bytes): from now on its consents must be signed by it."""
        _check_label("issuer", issuer)
        try:
            Ed25519PublicKey.from_public_bytes(public_key)
        except (TypeError, ValueError):
            raise ConsentError(f"an issuer key is {_KEY_BYTES} raw Ed25519 public-key bytes") from None
        with self._store.transaction(write=True) as db:
            if db.execute("SELECT 1 FROM issuers WHERE issuer = ?", (issuer,)).fetchone():
                raise ConsentError(f"issuer {issuer} already has a trusted key; keys are not replaced")
            db.execute("INSERT INTO issuers VALUES (?, ?)", (issuer, public_key))
            self._ledger.append(actor, "consent.issuer_trusted", issuer, {"public_key": public_key.hex()})

    def record(self, consent: Consent, actor: str) -> int:
        """Record a consent (``consent.recorded``); returns its ledger index.

        Refused with ConsentError, recorded as ``consent.refused``, when its id is taken or
        its issuer's key is trusted and the signature is missing or does not verify.
        """
        with self._store.transaction(write=True) as db:
            problem = _authenticity_problem(consent, _issuer_key(db, consent.issuer))
            if (
                problem is None
                and db.execute(
                    "SELECT 1 FROM consents WHERE consent_id = ?", (consent.consent_id,)
                ).fetchone()
            ):
                problem = "a consent with this id is already recorded"
            if problem is None:
                db.execute(
                    "INSERT INTO consents VALUES (?, ?, ?, ?, ?, NULL, NULL)",
                    (
                        consent.consent_id,
                        consent.subject,
                        consent.grantee,
                        consent.payload().decode(),
                        consent.signature,
                    ),
                )
                details = {**consent.fields(), "signed": consent.signature is not None}
                return self._ledger.append(actor, "consent.recorded", consent.consent_id, details).index
        self._ledger.append(actor, "consent.refused", consent.consent_id, {"reason": problem})
        raise ConsentError(f"consent {consent.consent_id} is refused: {problem}")

    def revoke(self, consent_id: str, actor: str, reason: str) -> int:
        """Revoke a recorded consent (``consent.revoked``); returns its ledger index.

        ConsentError if no such consent is recorded or it is already revoked.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise ConsentError("a revocation needs a reason")
        now = _rfc3339(datetime.now(UTC))
        with self._store.transaction(write=True) as db:
            changed = db.execute(
                "UPDATE consents SET revoked_at = ?, revoked_reason = ? "
                "WHERE consent_id = ? AND revoked_at IS NULL",
                (now, reason, consent_id),
            ).rowcount
            if not changed:
                raise ConsentError(f"no unrevoked consent {consent_id!r:.80} is recorded")
            return self._ledger.append(actor, "consent.revoked", consent_id, {"reason": reason}).index

    def find(
        self, subject: str, template_id: str, operator: str, at: datetime | None = None
    ) -> Consent | None:
        """A consent of ``subject`` (a pseudonym) letting ``operator`` run ``template_id`` at ``at``.

        Only an unrevoked consent in force at ``at`` (default now) whose scope names the
        template, granted to that operator, and authentic (see the module docstring)
        counts; of several, the one that runs longest. None if there is none.
        """
        when = datetime.now(UTC) if at is None else _utc("at", at)
        with self._store.transaction() as db:
            rows = db.execute(
                "SELECT body, signature FROM consents "
                "WHERE subject = ? AND grantee = ? AND revoked_at IS NULL",
                (subject, operator),
            ).fetchall()
            keys = dict(db.execute("SELECT issuer, public_key FROM issuers").fetchall())
        found = []
        for body, signature in rows:
            try:
                consent = Consent.from_fields(json.loads(body), signature)
            except (ConsentError, ValueError):
                continue  # an unreadable row proves nothing
            if (
                consent.subject == subject
                and consent.holds(template_id, operator, when)
                and _authenticity_problem(consent, keys.get(consent.issuer)) is None
            ):
                found.append(consent)
        return max(found, key=lambda c: (c.expires_at, c.consent_id), default=None)


def _issuer_key(db: sqlite3.Connection, issuer: str) -> bytes | None:
    row = db.execute("SELECT public_key FROM issuers WHERE issuer = ?", (issuer,)).fetchone()
    return None if row is None else bytes(row[0])


def _authenticity_problem(consent: Consent, key: bytes | None) -> str | None:
    """Why a consent is not authentic, or None: a trusted issuer's consents must carry its valid signature."""
    if key is None:
        if consent.signature is not None:
            return f"it is signed, but issuer {consent.issuer} has no trusted key to check the signature"
        return None
    if consent.signature is None:
        return f"issuer {consent.issuer} signs its consents, and this one is unsigned"
    if not consent.signature_valid(key):
        return f"its signature is not issuer {consent.issuer}'s over these fields"
    return None


def _check_label(kind: str, value: object) -> str:
    if not isinstance(value, str) or not _LABEL_RE.match(value):
        raise ConsentError(f"{kind} {value!r:.80} must be 1-128 letters, digits and _.:/@- characters")
    return value


def _utc(kind: str, value: object) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ConsentError(f"{kind} must be a timezone-aware datetime, not {value!r:.80}")
    return value.astimezone(UTC)


def _rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
