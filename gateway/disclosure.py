"""Public disclosure (信息披露): who is authorized for what, and how public data was used.

The seeds require the authority to disclose, regularly and to the public, each
authorization's holder, content, scope and term, and the operators to disclose their
partner units, their products and services, and how public data resources were used. A
disclosure here is one JSON document over a period: the authorizations in force at any
time in it, partner units, and usage statistics (jobs by operator and outcome, results
released, and per dataset the jobs and operators that used it). It names organisations,
never users, queries or values.

A disclosure is written once as canonical JSON and its SHA-256 appended to the ledger
(``disclosure.published``). Anyone may fetch it with an inclusion proof of that entry under
a signed checkpoint: ``veilbox ledger verify-proof`` then shows, offline, that the platform
committed to exactly this document — the signature is the log's own.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from gateway.control import ControlPlane, Principal, Role, schema
from gateway.control.identity import require_role
from gateway.control.renewals import months_before
from gateway.errors import InvalidRequest, NotFound
from gateway.workdir import Layout
from ledger import Ledger, PublicKey, canonical_json
from ledger.bundle import inclusion_bundle, verify_bundle
from ledger.errors import ProofError

KIND = "veilbox.disclosure/v1"
OUTCOMES = ("released", "refused", "rejected", "closed", "failed")
"""Job statuses counted separately; every other status counts as in progress."""


@dataclass(frozen=True)
class Published:
    """A disclosure written and committed to the ledger."""

    number: int
    sha256: str
    ledger_index: int
    document: dict[str, Any]


def build(control: ControlPlane, start: datetime, end: datetime) -> dict[str, Any]:
    """The disclosure document of the period ``start`` ≤ t < ``end``."""
    if not start < end:
        raise InvalidRequest("G-INPUT", "a disclosure period must end after it starts")
    s = schema
    with control.transaction(write=False) as conn:
        names = {
            row.id: row.name for row in conn.execute(select(s.organisations.c.id, s.organisations.c.name))
        }
        grants = conn.execute(
            select(s.authorizations)
            .where(s.authorizations.c.starts_at < end, s.authorizations.c.ends_at > start)
            .order_by(s.authorizations.c.starts_at, s.authorizations.c.id)
        ).mappings()
        authorizations = [
            {
                "id": g["id"],
                "operator": names[g["operator_id"]],
                "mode": g["mode"],
                "scope": list(g["scope"]),
                "datasets": list(g["datasets"]),
                "category": g["category"],
                "starts_at": g["starts_at"].isoformat(),
                "ends_at": g["ends_at"].isoformat(),
                "status": g["status"] if g["revoked_at"] is None or g["revoked_at"] >= end else "revoked",
            }
            for g in list(grants)
        ]
        partners = [
            {"operator": names[row.operator_id], "partner": row.name}
            for row in conn.execute(
                select(s.organisations.c.name, s.organisations.c.operator_id)
                .where(s.organisations.c.kind == "partner")
                .order_by(s.organisations.c.name)
            )
        ]
        jobs = conn.execute(
            select(s.jobs.c.operator_id, s.jobs.c.status, s.scenarios.c.datasets)
            .join(s.scenarios, s.jobs.c.scenario_id == s.scenarios.c.id)
            .where(s.jobs.c.created_at >= start, s.jobs.c.created_at < end, s.jobs.c.mock.is_(False))
        ).all()
    return {
        "kind": KIND,
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "authorizations": authorizations,
        "partners": partners,
        "usage": _usage(jobs, names),
    }


def publish(control: ControlPlane, layout: Layout, actor: str, start: datetime, end: datetime) -> Published:
    """Build the disclosure of a period, store it and commit its hash to the ledger."""
    built = {**build(control, start, end), "generated_at": control.now().isoformat()}
    folder = layout.disclosures
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        number = 1 + max((int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit()), default=0)
        document = {**built, "number": number}
        data = canonical_json(document)
        staging = folder / f".{number}.{secrets.token_hex(8)}.tmp"  # one per publisher, threads too
        staging.write_bytes(data)
        try:
            # Claiming the number and writing the file are one step: of two publishers, one
            # links first and the other takes the next number.
            os.link(staging, folder / f"{number}.json")
            break
        except FileExistsError:
            continue
        finally:
            staging.unlink(missing_ok=True)
    digest = hashlib.sha256(data).hexdigest()
    details = {"number": number, "sha256": digest, "period": document["period"]}
    index = control.ledger.append(actor, "disclosure.published", f"disclosure-{number}", details).index
    return Published(number, digest, index, document)


def publish_requested(
    control: ControlPlane, layout: Layout, principal: Principal, start: datetime, end: datetime
) -> Published:
    """:func:`publish` on the authority's request."""
    require_role(principal, {Role.AUTHORITY}, "publishing a disclosure")
    return publish(control, layout, principal.user_id, start, end)


def publish_due(control: ControlPlane, layout: Layout, actor: str) -> Published | None:
    """The disclosure of the last complete calendar month, if none covers it yet and the
    platform existed in it (the runner calls this as part of its sweep, so disclosure happens
    without anyone asking)."""
    now = control.now()
    end = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = months_before(end, 1)
    with control.transaction(write=False) as conn:
        founded = conn.scalar(select(func.min(schema.organisations.c.created_at)))
    if founded is None or founded >= end:
        return None
    for path in layout.disclosures.glob("*.json") if layout.disclosures.exists() else ():
        period = json.loads(path.read_bytes())["period"]
        if period == {"from": start.isoformat(), "to": end.isoformat()}:
            return None
    return publish(control, layout, actor, start, end)


def listing(layout: Layout) -> list[dict[str, Any]]:
    """Every disclosure's number, period, publication time and SHA-256, newest first."""
    found = []
    for path in layout.disclosures.glob("*.json") if layout.disclosures.exists() else ():
        if path.stem.isdigit():
            data = path.read_bytes()
            document = json.loads(data)
            found.append(
                {
                    "number": document["number"],
                    "period": document["period"],
                    "generated_at": document["generated_at"],
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
    return sorted(found, key=lambda d: -int(d["number"]))


def with_proof(ledger: Ledger, layout: Layout, number: int | None = None) -> dict[str, Any]:
    """A disclosure (the latest by default), its SHA-256 and an inclusion proof of its ledger
    entry under a fresh signed checkpoint, for anyone to check offline."""
    found = listing(layout)
    if number is not None:
        found = [d for d in found if d["number"] == number]
    if not found:
        raise NotFound("G-TENANT", "no such disclosure has been published")
    chosen = found[0]
    data = (layout.disclosures / f"{chosen['number']}.json").read_bytes()
    index = _entry_of(ledger, chosen["sha256"])
    checkpoint = ledger.latest_checkpoint()
    if checkpoint is None or checkpoint.size <= index:
        # Sign only when no checkpoint covers the entry yet: a public read must not cost a signature.
        ledger.checkpoint()
        checkpoint = ledger.latest_checkpoint()
    assert checkpoint is not None  # just signed
    return {
        "sha256": chosen["sha256"],
        "document": json.loads(data),
        "proof": inclusion_bundle(ledger, index, checkpoint),
        "public_key": ledger.public_key().vkey,
    }


def _entry_of(ledger: Ledger, digest: str) -> int:
    # Newest first: a disclosure asked for is almost always recent.
    size = ledger.size
    for start in range(max(0, size - 4096), -4096, -4096):
        lo = max(0, start)
        for offset, entry in enumerate(ledger.entries(lo, min(size, lo + 4096))):
            if entry.action == "disclosure.published" and entry.details.get("sha256") == digest:
                return lo + offset
        if lo == 0:
            break
    raise NotFound("G-STATE", f"no ledger entry commits to the disclosure {digest[:16]}…")


def _usage(jobs: Sequence[Any], names: dict[str, str]) -> dict[str, Any]:
    by_operator: dict[str, Counter[str]] = defaultdict(Counter)
    by_dataset: dict[str, dict[str, Any]] = {}
    for operator_id, status, datasets in jobs:
        outcome = status if status in OUTCOMES else "in_progress"
        by_operator[names[operator_id]][outcome] += 1
        for dataset in sorted(datasets):
            used = by_dataset.setdefault(dataset, {"jobs": 0, "released": 0, "operators": set()})
            used["jobs"] += 1
            used["released"] += outcome == "released"
            used["operators"].add(names[operator_id])
    return {
        "jobs": len(jobs),
        "released": sum(c["released"] for c in by_operator.values()),
        "by_operator": [
            {"operator": name, "jobs": sum(c.values()), **{o: c[o] for o in (*OUTCOMES, "in_progress")}}
            for name, c in sorted(by_operator.items())
        ],
        "by_dataset": [
            {"dataset": name, "jobs": u["jobs"], "released": u["released"], "operators": len(u["operators"])}
            for name, u in sorted(by_dataset.items())
        ],
    }


def default_period(now: datetime) -> tuple[datetime, datetime]:
    """The last 30 days up to ``now``: the period of a disclosure asked for without one."""
    now = now.astimezone(UTC)
    return now - timedelta(days=30), now


def verify(fetched: dict[str, Any], key: PublicKey) -> str:
    """Check a fetched disclosure offline against the log's pinned public ``key``: the
    document hashes to the SHA-256 that a ``disclosure.published`` entry commits to, and a
    checkpoint signed with ``key`` includes that entry. Raises LedgerError naming what failed."""
    try:
        document, claimed, bundle = fetched["document"], fetched["sha256"], fetched["proof"]
        entry = json.loads(bundle["entry"])
    except (KeyError, TypeError, ValueError):
        raise ProofError("this is not a disclosure fetched with its proof") from None
    actual = hashlib.sha256(canonical_json(document)).hexdigest()
    if actual != claimed:
        raise ProofError(f"the document hashes to {actual}, not the {claimed} it claims: it was altered")
    if entry.get("action") != "disclosure.published" or entry.get("details", {}).get("sha256") != actual:
        raise ProofError("the proven ledger entry does not commit to this document")
    proven = verify_bundle(bundle, key)
    return f"disclosure {document.get('number')} ({actual[:16]}…) is committed in the log: {proven}"
