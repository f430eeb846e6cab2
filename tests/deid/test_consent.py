"""Consent credentials: validation, Ed25519 signatures, and a registry that records, revokes and finds."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from deid.consent import Consent, ConsentRegistry
from deid.errors import ConsentError
from deid.keys import MasterKey
from deid.pseudonym import Pseudonymizer
from ledger import Ledger, verify_log

RAW_USCC = "91350100M000100Y43"
SUBJECT = Pseudonymizer(MasterKey(bytes(32))).pseudonym(RAW_USCC, "enterprise")
T0 = datetime(2026, 3, 1, tzinfo=UTC)
ISSUER_KEY = Ed25519PrivateKey.generate()


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _consent(**changes: Any) -> Consent:
    fields: dict[str, Any] = {
        "consent_id": "c-001",
        "domain": "enterprise",
        "subject": SUBJECT,
        "scope": ("V-TAX-ARREARS-12M", "V-CAPITAL-AT-LEAST"),
        "grantee": "operator:acme",
        "issuer": "notary:hangzhou",
        "issued_at": T0,
        "expires_at": T0 + timedelta(days=30),
        "evidence": "form/2026/000123",
    }
    return Consent(**{**fields, **changes})


@pytest.fixture
def registry(tmp_path: Path, log: Ledger) -> Iterator[ConsentRegistry]:
    opened = ConsentRegistry(tmp_path / "consent.sqlite", log)
    opened.trust_issuer("notary:hangzhou", _raw(ISSUER_KEY), actor="authority")
    yield opened
    opened.close()


def test_a_consent_names_its_subject_by_pseudonym_only() -> None:
    with pytest.raises(ConsentError, match="pseudonym") as refused:
        _consent(subject=RAW_USCC)
    assert RAW_USCC not in str(refused.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"issued_at": datetime(2026, 3, 1)}, "timezone-aware"),
        ({"expires_at": T0}, "expires before"),
        ({"scope": ()}, "at least one template"),
        ({"scope": "V-EMPLOYED"}, "at least one template"),
        ({"scope": ("V EMPLOYED",)}, "template id"),
        ({"grantee": ""}, "grantee"),
        ({"domain": "Enterprise"}, "join domain"),
        ({"evidence": " "}, "evidence"),
        ({"signature": b"short"}, "64 bytes"),
    ],
)
def test_malformed_consents_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConsentError, match=message):
        _consent(**changes)


def test_times_are_kept_in_utc_and_scope_sorted() -> None:
    beijing = timezone(timedelta(hours=8))
    consent = _consent(issued_at=datetime(2026, 3, 1, 8, tzinfo=beijing), scope=("V-B", "V-A", "V-B"))
    assert consent.issued_at == T0 and consent.issued_at.tzinfo is UTC
    assert consent.scope == ("V-A", "V-B")
    assert consent.fields()["issued_at"] == "2026-03-01T00:00:00Z"


def test_a_signature_covers_every_field() -> None:
    signed = _consent().signed(ISSUER_KEY)
    assert signed.signature_valid(_raw(ISSUER_KEY))
    assert not signed.signature_valid(_raw(Ed25519PrivateKey.generate()))
    assert not _consent().signature_valid(_raw(ISSUER_KEY))
    for change in (
        {"expires_at": T0 + timedelta(days=31)},
        {"scope": ("V-EMPLOYED",)},
        {"grantee": "operator:other"},
        {"evidence": "form/2026/000124"},
    ):
        assert not replace(signed, **change).signature_valid(_raw(ISSUER_KEY)), change


def test_find_returns_only_a_consent_in_force_in_scope_for_the_operator(registry: ConsentRegistry) -> None:
    registry.record(_consent().signed(ISSUER_KEY), actor="authority")
    inside = T0 + timedelta(days=1)
    found = registry.find(SUBJECT, "V-TAX-ARREARS-12M", "operator:acme", at=inside)
    assert found is not None and found.consent_id == "c-001"
    assert registry.find(SUBJECT, "V-EMPLOYED", "operator:acme", at=inside) is None
    assert registry.find(SUBJECT, "V-TAX-ARREARS-12M", "operator:other", at=inside) is None
    assert registry.find(SUBJECT, "V-TAX-ARREARS-12M", "operator:acme", at=T0 - timedelta(seconds=1)) is None
    assert registry.find(SUBJECT, "V-TAX-ARREARS-12M", "operator:acme", at=T0 + timedelta(days=30)) is None
    other = Pseudonymizer(MasterKey(bytes(32))).pseudonym("91350100M000100Y43", "person")
    assert registry.find(other, "V-TAX-ARREARS-12M", "operator:acme", at=inside) is None


def test_of_several_consents_the_longest_running_is_found(registry: ConsentRegistry) -> None:
    registry.record(_consent().signed(ISSUER_KEY), actor="authority")
    longer = _consent(consent_id="c-002", expires_at=T0 + timedelta(days=90)).signed(ISSUER_KEY)
    registry.record(longer, actor="authority")
    found = registry.find(SUBJECT, "V-TAX-ARREARS-12M", "operator:acme", at=T0 + timedelta(days=1))
    assert found == longer


def test_revoked_consents_are_not_found_and_revocation_is_recorded(
    registry: ConsentRegistry, log: Ledger
) -> None:
    index = registry.record(_consent().signed(ISSUER_KEY), actor="authority")
    assert log.entry(index).action == "consent.recorded"
    assert log.entry(index).details["signed"] is True
    revoked = registry.revoke("c-001", actor="authority", reason="the enterprise withdrew its consent")
    assert (log.entry(revoked).action, log.entry(revoked).subject) == ("consent.revoked", "c-001")
    assert registry.find(SUBJECT, "V-TAX-ARREARS-12M", "operator:acme", at=T0 + timedelta(days=1)) is None
    with pytest.raises(ConsentError, match="no unrevoked consent"):
        registry.revoke("c-001", actor="authority", reason="again")
    with pytest.raises(ConsentError, match="no unrevoked consent"):
        registry.revoke("c-404", actor="authority", reason="unknown")
    with pytest.raises(ConsentError, match="reason"):
        registry.revoke("c-001", actor="authority", reason="")


@pytest.mark.parametrize(
    ("consent", "problem"),
    [
        (_consent(), "unsigned"),
        (_consent().signed(Ed25519PrivateKey.generate()), "signature is not"),
        (replace(_consent().signed(ISSUER_KEY), grantee="operator:other"), "signature is not"),
        (_consent(issuer="notary:unknown").signed(ISSUER_KEY), "no trusted key"),
    ],
)
def test_inauthentic_consents_are_refused_and_the_refusal_recorded(
    registry: ConsentRegistry, log: Ledger, consent: Consent, problem: str
) -> None:
    with pytest.raises(ConsentError, match=problem):
        registry.record(consent, actor="authority")
    assert log.entries()[-1].action == "consent.refused"
    assert registry.find(SUBJECT, "V-TAX-ARREARS-12M", consent.grantee, at=T0 + timedelta(days=1)) is None


def test_an_issuer_without_a_key_vouches_by_evidence_alone(registry: ConsentRegistry) -> None:
    registry.record(_consent(issuer="app:self-service"), actor="authority")
    assert registry.find(SUBJECT, "V-CAPITAL-AT-LEAST", "operator:acme", at=T0 + timedelta(days=2))


def test_ids_are_unique_and_issuer_keys_are_not_replaced(registry: ConsentRegistry) -> None:
    registry.record(_consent().signed(ISSUER_KEY), actor="authority")
    with pytest.raises(ConsentError, match="already recorded"):
        registry.record(_consent(evidence="other").signed(ISSUER_KEY), actor="authority")
    with pytest.raises(ConsentError, match="already has a trusted key"):
        registry.trust_issuer("notary:hangzhou", _raw(Ed25519PrivateKey.generate()), actor="authority")
    with pytest.raises(ConsentError, match="32 raw"):
        registry.trust_issuer("notary:new", b"\x00" * 31, actor="authority")


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE consents SET body = replace(body, '2026-03-31', '2027-03-31')",
        "UPDATE consents SET body = replace(body, 'V-CAPITAL-AT-LEAST', 'V-EMPLOYED')",
        "UPDATE consents SET signature = zeroblob(64)",
        "UPDATE consents SET signature = NULL",
        "UPDATE consents SET body = 'not json'",
        "UPDATE consents SET body = '[]'",
    ],
)
def test_an_edited_row_is_ignored(tmp_path: Path, registry: ConsentRegistry, tamper: str) -> None:
    registry.record(_consent().signed(ISSUER_KEY), actor="authority")
    with sqlite3.connect(tmp_path / "consent.sqlite") as db:
        assert db.execute(tamper).rowcount == 1
    for template in ("V-CAPITAL-AT-LEAST", "V-EMPLOYED", "V-TAX-ARREARS-12M"):
        assert registry.find(SUBJECT, template, "operator:acme", at=T0 + timedelta(days=60)) is None
        assert registry.find(SUBJECT, template, "operator:acme", at=T0 + timedelta(days=1)) is None


def test_consents_persist_and_the_ledger_verifies(tmp_path: Path, log: Ledger) -> None:
    path = tmp_path / "consent.sqlite"
    first = ConsentRegistry(path, log)
    first.record(_consent(issuer="app:self-service"), actor="authority")
    first.close()
    again = ConsentRegistry(path, log)
    assert again.find(SUBJECT, "V-TAX-ARREARS-12M", "operator:acme", at=T0 + timedelta(days=3))
    again.close()
    assert verify_log(log.path).ok
    assert RAW_USCC.encode() not in path.read_bytes()
