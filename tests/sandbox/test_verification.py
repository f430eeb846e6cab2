"""Verification products on a real enclave: consented, rate-limited yes/no answers that match the data."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from deid.consent import Consent, ConsentRegistry
from deid.errors import ConsentError
from deid.identifiers import normalize_identifier
from sandbox.catalog import Tag
from sandbox.enclave import Enclave
from sandbox.errors import VerificationError
from sandbox.limits import Limits
from sandbox.policy import ScenarioPolicy
from sandbox.synth import generate_city
from sandbox.verification import (
    CITY_TEMPLATES,
    RateLimiter,
    VerificationOutcome,
    VerificationRequest,
    pseudonymize_subject,
    verify,
)
from tests.support import ingest_city

TABLES = ("residents", "enterprises", "credit_records")
OPERATOR = "operator:acme-credit"
NOW = datetime.now(UTC).replace(microsecond=0)
ISSUER = "notary:binhai"
ISSUER_KEY = Ed25519PrivateKey.generate()
ALL = tuple(CITY_TEMPLATES)


@dataclass
class City:
    enclave: Enclave
    registry: ConsentRegistry
    limiter: RateLimiter
    policy: ScenarioPolicy
    root: Path
    raw: dict[str, list[dict[str, Any]]]
    consents: int = 0
    asked: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    root = tmp_path_factory.mktemp("verification")
    generate_city(3000, 7, root / "city")
    with Enclave.open(root / "work", limits=Limits(timeout_s=20, memory_mb=256), workers=1) as enclave:
        ingest_city(enclave, root / "city", TABLES, level=2)
        registry = ConsentRegistry(root / "work" / "consent.sqlite", enclave.ledger)
        public = ISSUER_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        registry.trust_issuer(ISSUER, public, actor="authority:data-bureau")
        limiter = RateLimiter(root / "work" / "verification-rate.sqlite", 10_000, timedelta(minutes=1))
        policy = ScenarioPolicy({t: enclave.catalog.get(t) for t in TABLES})
        raw = {t: pq.read_table(root / "city" / f"{t}.parquet").to_pylist() for t in TABLES}
        yield City(enclave, registry, limiter, policy, root, raw)
        limiter.close()
        registry.close()


def _grant(
    city: City,
    raw: str,
    domain: str,
    scope: tuple[str, ...] = ALL,
    operator: str = OPERATOR,
    expires: datetime = NOW + timedelta(days=365),
) -> Consent:
    city.consents += 1
    consent = Consent(
        consent_id=f"consent-{city.consents:04d}",
        domain=domain,
        subject=pseudonymize_subject(city.enclave.pseudonymizer, domain, raw),
        scope=scope,
        grantee=operator,
        issuer=ISSUER,
        issued_at=NOW - timedelta(days=30),
        expires_at=expires,
        evidence=f"notary/2026/{city.consents:06d}",
    ).signed(ISSUER_KEY)
    city.registry.record(consent, actor="authority:data-bureau")
    return consent


def _ask(
    city: City,
    template: str,
    subject: object,
    params: Mapping[str, object] | None = None,
    *,
    operator: str = OPERATOR,
    policy: ScenarioPolicy | None = None,
    limiter: RateLimiter | None = None,
    now: datetime = NOW,
) -> VerificationOutcome:
    """One call, checked to leave exactly one ledger entry that agrees with its outcome."""
    if isinstance(subject, str) and len(subject) <= 64:
        city.asked |= {subject, normalize_identifier(subject)}
    before = city.enclave.ledger.size
    request = VerificationRequest(
        operator=operator,
        actor="developer:li",
        template=template,
        subject=subject,  # type: ignore[arg-type]  # malformed subjects are part of the test
        policy=policy or city.policy,
        params=params or {},
    )
    outcome = verify(city.enclave, city.registry, request, limiter=limiter or city.limiter, now=now)
    assert city.enclave.ledger.size == before + 1
    entry = city.enclave.ledger.entry(before)
    assert (entry.index, entry.subject) == (outcome.ledger_index, outcome.verification_id)
    assert entry.action == f"verification.{outcome.status}"
    assert entry.details["operator"] == operator and entry.details["template"] == template
    if outcome.status == "answered":
        assert entry.details["answer"] is outcome.answer and entry.details["consent_id"]
    else:
        assert outcome.answer is None and entry.details.get("rule") == outcome.rule
    return outcome


def _answer(city: City, template: str, subject: str, params: Mapping[str, object] | None = None) -> bool:
    outcome = _ask(city, template, subject, params)
    assert outcome.status == "answered", outcome.reason
    assert outcome.answer is not None
    return outcome.answer


def _arrears(city: City, uscc: str, as_of: date) -> bool:
    start = as_of.replace(year=as_of.year - 1)
    return any(
        r["uscc"] == uscc and r["record_type"] == "tax_arrears" and start < r["record_date"] <= as_of
        for r in city.raw["credit_records"]
    )


def test_tax_arrears_answers_match_the_raw_records(city: City) -> None:
    arrears = [r for r in city.raw["credit_records"] if r["record_type"] == "tax_arrears"]
    latest = max(arrears, key=lambda r: r["record_date"])
    uscc, day = latest["uscc"], latest["record_date"]
    _grant(city, uscc, "enterprise")
    seen = set()
    for as_of in [day + timedelta(days=d) for d in (0, 30, 364, 366, 400, -1) if d < (NOW.date() - day).days]:
        expected = _arrears(city, uscc, as_of)
        assert _answer(city, "V-TAX-ARREARS-12M", uscc, {"as_of": as_of.isoformat()}) is expected, as_of
        seen.add(expected)
    assert seen == {True, False}
    clean = next(
        e["uscc"]
        for e in city.raw["enterprises"]
        if all(r["uscc"] != e["uscc"] for r in city.raw["credit_records"])
    )
    _grant(city, clean, "enterprise")
    assert _answer(city, "V-TAX-ARREARS-12M", clean, {"as_of": day}) is False


def test_capital_threshold_answers_both_ways(city: City) -> None:
    firm = next(e for e in city.raw["enterprises"] if 10 < e["registered_capital"] < 90_000)
    uscc, capital = firm["uscc"], firm["registered_capital"]
    _grant(city, uscc, "enterprise")
    assert _answer(city, "V-CAPITAL-AT-LEAST", uscc, {"threshold": capital}) is True
    assert _answer(city, "V-CAPITAL-AT-LEAST", uscc, {"threshold": int(capital // 2)}) is True
    assert _answer(city, "V-CAPITAL-AT-LEAST", uscc, {"threshold": capital + 0.01}) is False
    spaced = f" {uscc[:6]} {uscc[6:].lower()} "
    assert _answer(city, "V-CAPITAL-AT-LEAST", spaced, {"threshold": capital}) is True, "normalized first"


def test_employment_answers_match_the_raw_residents(city: City) -> None:
    residents = city.raw["residents"]
    employed = next(r["resident_id"] for r in residents if r["employed"])
    unemployed = next(r["resident_id"] for r in residents if not r["employed"])
    for resident, expected in ((employed, True), (unemployed, False)):
        _grant(city, resident, "person")
        assert _answer(city, "V-EMPLOYED", resident) is expected


def test_an_unknown_subject_gets_no_rather_than_unknown(city: City) -> None:
    stranger = "11010519491231002X"  # a valid resident ID that is not in the synthetic city
    assert all(r["resident_id"] != stranger for r in city.raw["residents"])
    _grant(city, stranger, "person")
    assert _answer(city, "V-EMPLOYED", stranger) is False


def _refused(outcome: VerificationOutcome, rule: str, message: str = "") -> None:
    assert (outcome.status, outcome.rule) == ("refused", rule), outcome.reason
    assert message in outcome.reason


def test_consent_is_required_in_force_in_scope_and_for_the_operator(city: City) -> None:
    firm = city.raw["enterprises"][3]["uscc"]
    _refused(_ask(city, "V-CAPITAL-AT-LEAST", firm, {"threshold": 1}), "V-CONSENT", "no consent in force")
    consent = _grant(city, firm, "enterprise", scope=("V-CAPITAL-AT-LEAST",))
    answered = _ask(city, "V-CAPITAL-AT-LEAST", firm, {"threshold": 1})
    assert answered.status == "answered"
    last = city.enclave.ledger.entry(answered.ledger_index or 0)
    assert last.details["consent_id"] == consent.consent_id
    _refused(_ask(city, "V-TAX-ARREARS-12M", firm, {"as_of": "2025-06-30"}), "V-CONSENT")
    _refused(_ask(city, "V-CAPITAL-AT-LEAST", firm, {"threshold": 1}, operator="operator:other"), "V-CONSENT")
    later = NOW + timedelta(days=366)
    _refused(_ask(city, "V-CAPITAL-AT-LEAST", firm, {"threshold": 1}, now=later), "V-CONSENT")
    city.registry.revoke(consent.consent_id, actor="authority:data-bureau", reason="withdrawn by the firm")
    _refused(_ask(city, "V-CAPITAL-AT-LEAST", firm, {"threshold": 1}), "V-CONSENT")


def test_an_expired_consent_is_refused(city: City) -> None:
    firm = city.raw["enterprises"][4]["uscc"]
    _grant(city, firm, "enterprise", expires=NOW - timedelta(seconds=1))
    _refused(_ask(city, "V-CAPITAL-AT-LEAST", firm, {"threshold": 1}), "V-CONSENT")


def test_forged_or_altered_signatures_are_refused(city: City) -> None:
    firm, other = city.raw["enterprises"][5]["uscc"], city.raw["enterprises"][6]["uscc"]
    forged = Consent(
        "forged-1",
        "enterprise",
        pseudonymize_subject(city.enclave.pseudonymizer, "enterprise", firm),
        ALL,
        OPERATOR,
        ISSUER,
        NOW - timedelta(days=1),
        NOW + timedelta(days=1),
        "notary/none",
    ).signed(Ed25519PrivateKey.generate())
    with pytest.raises(ConsentError, match="signature"):
        city.registry.record(forged, actor="operator:acme-credit")
    _refused(_ask(city, "V-CAPITAL-AT-LEAST", firm, {"threshold": 1}), "V-CONSENT")
    altered = _grant(city, other, "enterprise", scope=("V-TAX-ARREARS-12M",))
    with sqlite3.connect(city.root / "work" / "consent.sqlite") as db:
        db.execute(
            "UPDATE consents SET body = replace(body, 'V-TAX-ARREARS-12M', 'V-CAPITAL-AT-LEAST') "
            "WHERE consent_id = ?",
            (altered.consent_id,),
        )
    _refused(_ask(city, "V-CAPITAL-AT-LEAST", other, {"threshold": 1}), "V-CONSENT")
    _refused(_ask(city, "V-TAX-ARREARS-12M", other, {"as_of": "2025-06-30"}), "V-CONSENT")


def test_the_rate_limit_refuses_within_the_window_and_recovers_after(city: City) -> None:
    firm = city.raw["enterprises"][7]["uscc"]
    _grant(city, firm, "enterprise")
    limiter = RateLimiter(city.root / "rate-small.sqlite", 3, timedelta(seconds=60))
    ask = lambda at: _ask(city, "V-CAPITAL-AT-LEAST", firm, {"threshold": 1}, limiter=limiter, now=at)  # noqa: E731
    assert [ask(NOW + timedelta(seconds=s)).status for s in (0, 10, 20)] == ["answered"] * 3
    _refused(ask(NOW + timedelta(seconds=30)), "V-RATE", "3 verifications per 0:01:00")
    _refused(ask(NOW + timedelta(seconds=59)), "V-RATE")
    assert ask(NOW + timedelta(seconds=61)).status == "answered", "the first call left the window"
    _refused(ask(NOW + timedelta(seconds=62)), "V-RATE")
    other = _ask(
        city, "V-CAPITAL-AT-LEAST", firm, {"threshold": 1}, operator="operator:other", limiter=limiter
    )
    _refused(other, "V-CONSENT")  # refusals before the limit do not count against it
    limiter.close()
    reopened = RateLimiter(city.root / "rate-small.sqlite", 3, timedelta(seconds=60))
    assert not reopened.admit(OPERATOR, NOW + timedelta(seconds=63)), "the window persists"
    reopened.close()
    with pytest.raises(VerificationError, match="rate limit"):
        RateLimiter(city.root / "rate-bad.sqlite", 0, timedelta(seconds=1))


@pytest.mark.parametrize(
    ("template", "subject", "params", "rule", "message"),
    [
        ("V-UNKNOWN", "91350100M000100Y43", {}, "V-TEMPLATE", "not an approved"),
        ("V-CAPITAL-AT-LEAST", "91350100M000100Y43", {}, "V-PARAMS", "needs parameter threshold"),
        ("V-CAPITAL-AT-LEAST", "91350100M000100Y43", {"threshold": -1}, "V-PARAMS", "between 0 and 100000"),
        ("V-CAPITAL-AT-LEAST", "91350100M000100Y43", {"threshold": 1e9}, "V-PARAMS", "between 0 and 100000"),
        ("V-CAPITAL-AT-LEAST", "91350100M000100Y43", {"threshold": "5"}, "V-PARAMS", "finite number"),
        ("V-CAPITAL-AT-LEAST", "91350100M000100Y43", {"threshold": True}, "V-PARAMS", "finite number"),
        ("V-CAPITAL-AT-LEAST", "91350100M000100Y43", {"threshold": float("nan")}, "V-PARAMS", "finite"),
        ("V-CAPITAL-AT-LEAST", "91350100M000100Y43", {"threshold": 1, "x": 2}, "V-PARAMS", "no parameter x"),
        ("V-TAX-ARREARS-12M", "91350100M000100Y43", {"as_of": "2025-02-30"}, "V-PARAMS", "a date"),
        ("V-TAX-ARREARS-12M", "91350100M000100Y43", {"as_of": "30/06/2025"}, "V-PARAMS", "a date"),
        ("V-TAX-ARREARS-12M", "91350100M000100Y43", {"as_of": "1999-12-31"}, "V-PARAMS", "from 2000-01-01"),
        ("V-TAX-ARREARS-12M", "91350100M000100Y43", {"as_of": NOW + timedelta(days=2)}, "V-PARAMS", "a date"),
        ("V-TAX-ARREARS-12M", "91350100M000100Y43", {"as_of": "2999-01-01"}, "V-PARAMS", "to today"),
        ("V-CAPITAL-AT-LEAST", "91350100M000100Y44", {"threshold": 1}, "V-SUBJECT", "valid check character"),
        ("V-CAPITAL-AT-LEAST", "11010519491231002X", {"threshold": 1}, "V-SUBJECT", "credit code"),
        ("V-CAPITAL-AT-LEAST", 91350100, {"threshold": 1}, "V-SUBJECT", "credit code"),
        ("V-EMPLOYED", "110105194912310021", {}, "V-SUBJECT", "resident identity number"),
        ("V-EMPLOYED", "11010519491331002X", {}, "V-SUBJECT", "real birth date"),
        ("V-EMPLOYED", "1" * 10_000, {}, "V-SUBJECT", "resident identity number"),
    ],
)
def test_malformed_requests_are_refused_with_clear_reasons(
    city: City, template: str, subject: object, params: dict[str, object], rule: str, message: str
) -> None:
    outcome = _ask(city, template, subject, params)
    _refused(outcome, rule, message)
    if isinstance(subject, str):
        assert subject[:18] not in outcome.reason


def test_the_scenario_must_cover_the_template(city: City) -> None:
    resident = city.raw["residents"][10]["resident_id"]
    _grant(city, resident, "person")
    narrow = ScenarioPolicy({"enterprises": city.enclave.catalog.get("enterprises")})
    _refused(
        _ask(city, "V-EMPLOYED", resident, policy=narrow), "V-SCOPE", "does not include dataset residents"
    )
    residents = city.enclave.catalog.get("residents")
    hidden = tuple(replace(c, tag=Tag.HIDDEN) if c.name == "employed" else c for c in residents.columns)
    policy = ScenarioPolicy({"residents": replace(residents, columns=hidden)})
    _refused(_ask(city, "V-EMPLOYED", resident, policy=policy), "V-SCOPE", "residents.employed is hidden")


def test_requests_need_an_operator_and_keep_the_subject_out_of_repr(city: City) -> None:
    with pytest.raises(VerificationError, match="operator"):
        VerificationRequest("", "developer:li", "V-EMPLOYED", "11010519491231002X", city.policy)
    request = VerificationRequest(OPERATOR, "developer:li", "V-EMPLOYED", "11010519491231002X", city.policy)
    assert "11010519491231002X" not in repr(request)


def test_raw_identifiers_reach_no_ledger_entry_and_no_stored_row(city: City) -> None:
    firm = city.raw["enterprises"][20]["uscc"]
    _grant(city, firm, "enterprise")
    _answer(city, "V-TAX-ARREARS-12M", firm, {"as_of": "2025-06-30"})
    _ask(city, "V-EMPLOYED", city.raw["residents"][20]["resident_id"])  # refused, still recorded
    files = [p for p in city.root.rglob("*") if p.is_file() and "city" not in p.relative_to(city.root).parts]
    names = {p.name for p in files}
    assert {"entries.jsonl", "consent.sqlite", "verification-rate.sqlite"} <= names
    assert any(name.endswith("-wal") for name in names), "the write-ahead logs are scanned too"
    assert len(city.asked) >= 2
    for path in files:
        content = path.read_bytes()
        leaked = [raw for raw in city.asked if raw.encode() in content]
        assert not leaked, f"{path} holds a raw identifier"
    actions = {e.action for e in city.enclave.ledger.entries()}
    assert {"verification.answered", "verification.refused", "consent.recorded"} <= actions
