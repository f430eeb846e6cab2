"""Verification products (核验): one yes/no answer about one consenting subject.

An operator asks an approved :class:`Template` — "has this enterprise had tax arrears in
the twelve months to a date?", "is its registered capital at least Y?", "is this resident
employed?" — about one subject it names by its raw identifier. :func:`verify` answers
with a boolean and nothing else, in these steps, each refusal naming its rule:

1. ``V-TEMPLATE`` the template is approved; ``V-PARAMS`` its parameters have the declared
   types and ranges;
2. ``V-SUBJECT`` the identifier is well formed for the template's join domain (check
   characters included); it is then normalized and pseudonymized inside the enclave and
   only the pseudonym goes further — the raw value is in no log, error or ledger entry;
3. ``V-SCOPE`` the template's dataset is in the scenario, no column it reads is hidden
   there, and its subject column is an identifier of the template's join domain;
4. ``V-CONSENT`` a consent credential (:mod:`deid.consent`) in force, unrevoked,
   authentic, granted to the operator and naming the template is recorded;
5. ``V-RATE`` the operator is within its sliding-window rate limit (:class:`RateLimiter`);
6. the template's fixed SQL, with the pseudonym and parameters as literals rendered by
   sqlglot, runs in the isolated worker pool on that one dataset.

The SQL filters on an identifier, which the query policy forbids to submitted SQL; that is
why it is built only from a template and bound values, never from text a caller wrote.

A subject absent from the dataset gets False, the same answer as a subject for whom the
predicate is false: a separate "unknown" would tell the operator whether the authority
holds any record of the subject, which the consent does not cover.

Every call is one ledger entry — ``verification.answered`` (with the answer, which is the
operator's product), ``verification.refused`` (with the rule) or ``verification.failed`` —
carrying the operator, the template, the subject's pseudonym once known and the consent id
once found. The consent registry and the rate limit store are SQLite files beside the
catalog (e.g. ``WORKDIR/consent.sqlite`` and ``WORKDIR/verification-rate.sqlite``).
"""

from __future__ import annotations

import contextlib
import math
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from sqlglot import exp

from deid.consent import ConsentRegistry
from deid.identifiers import is_resident_id, is_uscc, normalize_identifier
from deid.pseudonym import Pseudonymizer
from deid.sqlite_store import SqliteStore
from sandbox.catalog import Tag, check_name
from sandbox.enclave import Enclave
from sandbox.errors import CatalogError, JobError, VerificationError
from sandbox.jobs import execute_checked
from sandbox.policy import ScenarioPolicy

ParamValue = float | date
Status = Literal["answered", "refused", "failed"]

SUBJECT_FORMATS: Mapping[str, tuple[Callable[[str], bool], str]] = MappingProxyType(
    {
        "enterprise": (is_uscc, "a unified social credit code (18 characters, valid check character)"),
        "person": (
            is_resident_id,
            "a resident identity number (18 characters, real birth date, valid check)",
        ),
    }
)
"""The join domains a template may verify, with each domain's identifier check and its description."""

_MAX_SUBJECT_CHARS = 64
_TEMPLATE_ID_RE = re.compile(r"V-[A-Z0-9]+(?:-[A-Z0-9]+)*\Z")
_ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


@dataclass(frozen=True)
class NumberParam:
    """A numeric template parameter accepted within [lower, upper]."""

    name: str
    lower: float
    upper: float
    description: str = ""

    def parse(self, value: object, today: date) -> float:
        """The value as a float; VerificationError if it is not a finite number in range."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise VerificationError(f"parameter {self.name} must be a finite number, not {value!r:.40}")
        if not self.lower <= value <= self.upper:
            raise VerificationError(
                f"parameter {self.name} must be between {self.lower:g} and {self.upper:g}, got {value!r:.40}"
            )
        return float(value)


@dataclass(frozen=True)
class DateParam:
    """A date template parameter (a ``date`` or ``YYYY-MM-DD`` text) from ``earliest`` to today."""

    name: str
    earliest: date
    description: str = ""

    def parse(self, value: object, today: date) -> date:
        """The value as a date; VerificationError if it is malformed, too early or in the future."""
        if isinstance(value, str) and _ISO_DATE_RE.match(value):
            with contextlib.suppress(ValueError):  # an impossible date is refused below as given
                value = date.fromisoformat(value)
        if isinstance(value, datetime) or not isinstance(value, date):
            raise VerificationError(f"parameter {self.name} must be a date (YYYY-MM-DD), not {value!r:.40}")
        if not self.earliest <= value <= today:
            raise VerificationError(
                f"parameter {self.name} must be from {self.earliest} to today ({today}), got {value}"
            )
        return value


Param = NumberParam | DateParam
Predicate = Callable[[Mapping[str, ParamValue]], exp.Expr]


@dataclass(frozen=True)
class Template:
    """An approved verification: a predicate over one dataset's rows of one subject.

    ``predicate`` builds a sqlglot condition from the parsed parameters; the answer is
    whether any row of the subject (``subject_column`` equal to its pseudonym in
    ``domain``) satisfies it.
    """

    id: str
    description: str
    dataset: str
    subject_column: str
    domain: str
    params: tuple[Param, ...]
    predicate: Predicate

    def __post_init__(self) -> None:
        if not _TEMPLATE_ID_RE.match(self.id):
            raise VerificationError(f"template id {self.id!r} must look like V-UPPER-CASE-WORDS")
        check_name("dataset", self.dataset)
        check_name("column", self.subject_column)
        if self.domain not in SUBJECT_FORMATS:
            raise VerificationError(f"template {self.id}: no identifier check for domain {self.domain!r}")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise VerificationError(f"template {self.id}: parameter names must be unique")

    def bind(self, values: object, today: date) -> dict[str, ParamValue]:
        """Parse the request's parameters; VerificationError naming the first one that is wrong."""
        if not isinstance(values, Mapping):
            raise VerificationError(f"template {self.id} takes its parameters as a mapping of name to value")
        expected = {p.name for p in self.params}
        if unknown := sorted(str(k)[:40] for k in values if k not in expected):
            raise VerificationError(f"template {self.id} has no parameter {', '.join(unknown)}")
        if missing := sorted(expected - set(values)):
            raise VerificationError(f"template {self.id} needs parameter {', '.join(missing)}")
        return {p.name: p.parse(values[p.name], today) for p in self.params}

    def query(self, pseudonym: str, values: Mapping[str, ParamValue]) -> exp.Select:
        """``SELECT EXISTS (…) AS answer`` over the subject's rows, every value a rendered literal."""
        rows = (
            exp.select(exp.Literal.number(1))
            .from_(exp.to_table(self.dataset))
            .where(exp.column(self.subject_column).eq(exp.Literal.string(pseudonym)))
            .where(self.predicate(values))
        )
        return exp.select(exp.Exists(this=rows).as_("answer"))


def _tax_arrears_12m(values: Mapping[str, ParamValue]) -> exp.Expr:
    as_of = exp.convert(values["as_of"])
    year_before = exp.Sub(
        this=as_of, expression=exp.Interval(this=exp.Literal.number(12), unit=exp.var("MONTH"))
    )
    return exp.and_(
        exp.column("record_type").eq(exp.Literal.string("tax_arrears")),
        exp.column("record_date") > year_before,
        exp.column("record_date") <= as_of.copy(),
    )


CITY_TEMPLATES: Mapping[str, Template] = MappingProxyType(
    {
        t.id: t
        for t in (
            Template(
                "V-TAX-ARREARS-12M",
                "Has the enterprise a tax arrears record dated in the 12 months up to as_of?",
                "credit_records",
                "uscc",
                "enterprise",
                (DateParam("as_of", date(2000, 1, 1), "the end of the 12-month window, inclusive"),),
                _tax_arrears_12m,
            ),
            Template(
                "V-CAPITAL-AT-LEAST",
                "Is the enterprise's registered capital (10k CNY) at least the threshold?",
                "enterprises",
                "uscc",
                "enterprise",
                (NumberParam("threshold", 0, 100_000, "in 10k CNY, within the column's declared bounds"),),
                lambda values: exp.column("registered_capital") >= exp.convert(values["threshold"]),
            ),
            Template(
                "V-EMPLOYED",
                "Is the resident employed?",
                "residents",
                "resident_id",
                "person",
                (),
                lambda values: exp.column("employed").is_(exp.true()),
            ),
        )
    }
)
"""The synthetic city's approved verification templates, by id."""


@dataclass(frozen=True)
class VerificationRequest:
    """One verification call: who asks, which template, about whom, with what, in which scenario.

    ``subject`` is the raw identifier; it stays out of ``repr`` so that no log shows it.
    """

    operator: str
    actor: str
    template: str
    subject: str = field(repr=False)
    policy: ScenarioPolicy
    params: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, value in (("operator", self.operator), ("actor", self.actor), ("template", self.template)):
            if not isinstance(value, str) or not value or len(value) > 128:
                raise VerificationError(f"a verification request needs a {kind} of 1-128 characters")


@dataclass(frozen=True)
class VerificationOutcome:
    """What a verification returned: the boolean when answered, else the refusal's rule and reason."""

    verification_id: str
    status: Status
    answer: bool | None = None
    rule: str | None = None
    reason: str = ""
    ledger_index: int | None = None


_RATE_SCHEMA = (
    "CREATE TABLE calls (operator TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX calls_by_operator ON calls (operator, at)",
)


class RateLimiter:
    """At most ``calls`` admitted verifications per operator in any sliding ``window``, in SQLite."""

    def __init__(self, path: Path, calls: int, window: timedelta) -> None:
        if type(calls) is not int or calls < 1 or window <= timedelta(0):
            raise VerificationError("a rate limit needs at least one call per positive window")
        self.calls, self.window = calls, window
        self._store = SqliteStore(path, what="rate limit store", error=VerificationError, schema=_RATE_SCHEMA)

    def admit(self, operator: str, at: datetime) -> bool:
        """Count one call by ``operator`` at ``at`` and return True, or return False if over the limit."""
        now = at.timestamp()
        # A write transaction holds the lock from the count to the insert, across processes.
        with self._store.transaction(write=True) as db:
            db.execute(
                "DELETE FROM calls WHERE operator = ? AND at <= ?",
                (operator, now - self.window.total_seconds()),
            )
            inserted = db.execute(
                "INSERT INTO calls SELECT ?, ? WHERE (SELECT COUNT(*) FROM calls WHERE operator = ?) < ?",
                (operator, now, operator, self.calls),
            ).rowcount
        return bool(inserted == 1)

    def close(self) -> None:
        """Close the store; every admitted call is on disk."""
        self._store.close()


def pseudonymize_subject(pseudonymizer: Pseudonymizer, domain: str, raw: object) -> str:
    """The pseudonym of a raw subject identifier in ``domain``, after checking its format.

    VerificationError if it is malformed; the message never repeats the value.
    """
    check, described = SUBJECT_FORMATS[domain]
    if not isinstance(raw, str) or len(raw) > _MAX_SUBJECT_CHARS or not check(normalize_identifier(raw)):
        raise VerificationError(f"the subject identifier is not {described}")
    return pseudonymizer.pseudonym(raw, domain)


def verify(
    enclave: Enclave,
    registry: ConsentRegistry,
    request: VerificationRequest,
    *,
    limiter: RateLimiter,
    templates: Mapping[str, Template] = CITY_TEMPLATES,
    now: datetime | None = None,
) -> VerificationOutcome:
    """Answer one verification request, or refuse it; see the module docstring for the steps."""
    when = datetime.now(UTC) if now is None else now
    if when.utcoffset() is None:
        raise VerificationError("the time of a verification must be timezone-aware")
    trail = _Trail(enclave, request)
    template = templates.get(request.template)
    if template is None:
        return trail.end(
            "refused", rule="V-TEMPLATE", reason=f"{request.template} is not an approved template"
        )
    try:
        values = template.bind(request.params, when.date())
    except VerificationError as exc:
        return trail.end("refused", rule="V-PARAMS", reason=str(exc))
    trail.details["params"] = {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items()}
    try:
        pseudonym = pseudonymize_subject(enclave.pseudonymizer, template.domain, request.subject)
    except VerificationError as exc:
        return trail.end("refused", rule="V-SUBJECT", reason=str(exc))
    trail.details["subject"] = pseudonym
    query = template.query(pseudonym, values)
    if (problem := _scope_problem(template, query, request.policy)) is not None:
        return trail.end("refused", rule="V-SCOPE", reason=problem)
    consent = registry.find(pseudonym, template.id, request.operator, at=when)
    if consent is None or consent.domain != template.domain:
        why = (
            f"no consent in force lets {request.operator} run {template.id} about this subject "
            "(none recorded, expired, revoked, outside its scope or not authentic)"
        )
        return trail.end("refused", rule="V-CONSENT", reason=why)
    trail.details["consent_id"] = consent.consent_id
    if not limiter.admit(request.operator, when):
        why = f"{request.operator} has used its {limiter.calls} verifications per {limiter.window}"
        return trail.end("refused", rule="V-RATE", reason=why)
    try:
        table = execute_checked(enclave, query.sql(dialect="duckdb"), frozenset({template.dataset}))
    except JobError as exc:
        return trail.end("failed", reason=str(exc))
    answers = table.column("answer").to_pylist() if table.column_names == ["answer"] else []
    if len(answers) != 1 or not isinstance(answers[0], bool):
        return trail.end("failed", reason="the verification query did not return exactly one boolean")
    return trail.end("answered", answer=answers[0])


def _scope_problem(template: Template, query: exp.Select, policy: ScenarioPolicy) -> str | None:
    """Why the scenario does not allow this template's query, or None."""
    dataset = policy.datasets.get(template.dataset)
    if dataset is None:
        return f"the scenario does not include dataset {template.dataset}"
    for name in sorted({column.name for column in query.find_all(exp.Column)}):
        try:
            column = dataset.column(name)
        except CatalogError as exc:
            return str(exc)
        if column.tag is Tag.HIDDEN:
            return f"column {dataset.name}.{name} is hidden in this scenario"
    subject = dataset.column(template.subject_column)
    if subject.tag is not Tag.IDENTIFIER or subject.join_domain != template.domain:
        return f"{dataset.name}.{subject.name} is not an identifier of join domain {template.domain}"
    return None


class _Trail:
    """One call's ledger entry, with what is known about the call when it ends."""

    def __init__(self, enclave: Enclave, request: VerificationRequest) -> None:
        self.enclave, self.actor = enclave, request.actor
        self.verification_id = f"ver_{secrets.token_hex(8)}"
        self.details: dict[str, Any] = {
            "operator": request.operator,
            "template": request.template,
            "consent_id": None,
        }

    def end(
        self, status: Status, *, answer: bool | None = None, rule: str | None = None, reason: str = ""
    ) -> VerificationOutcome:
        """Record ``verification.<status>`` and return the outcome it describes."""
        result = {"answer": answer} if status == "answered" else {"rule": rule, "reason": reason}
        entry = self.enclave.ledger.append(
            self.actor, f"verification.{status}", self.verification_id, {**self.details, **result}
        )
        return VerificationOutcome(self.verification_id, status, answer, rule, reason, entry.index)
