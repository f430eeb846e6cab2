"""The audit ledger as service functions for auditors and the authority: the API and the
console call these.

Entries are read with their canonical JSON and leaf hash; every checkpoint signed here is
kept (``WORKDIR/checkpoints/SIZE.note``) so a consistency proof can be given between any
two of them; proofs come as bundles that ``veilbox ledger verify-proof`` checks offline
with only the log's public key. :func:`activity` counts what the ledger says happened.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from gateway.control import Principal, Role
from gateway.control.identity import require_role
from gateway.errors import InvalidRequest
from gateway.platform import Platform
from ledger import Checkpoint, Entry, LedgerError, VerifyReport, verify_log
from ledger.bundle import consistency_bundle, inclusion_bundle
from ledger.note import open_checkpoint

AUDITORS = frozenset({Role.AUDITOR, Role.AUTHORITY})
MAX_SCAN = 1000
"""How many entries one read looks at unless its caller asks for another window."""
ACTIVITY_WINDOW = 100_000
"""How many of the newest entries :func:`activity` counts."""
_NOTE = re.compile(r"(\d{1,15})\.note")
_REFUSALS = {"job.refused", "budget.refused", "access.denied"}


@dataclass(frozen=True)
class EntryQuery:
    """Which entries to show: each field given must match; times are [since, until)."""

    action: str | None = None
    actor: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, entry: Entry) -> bool:
        """Whether ``entry`` passes every filter given."""
        if (self.action and entry.action != self.action) or (self.actor and entry.actor != self.actor):
            return False
        if self.subject and entry.subject != self.subject:
            return False
        if self.since is None and self.until is None:
            return True
        when = entry_time(entry)
        return (self.since is None or when >= self.since) and (self.until is None or when < self.until)


@dataclass(frozen=True)
class EntryPage:
    """Entries matching a query among those at ``start`` ≤ index < ``stop`` of a log of ``size``."""

    size: int
    start: int
    stop: int
    entries: list[Entry]


@dataclass(frozen=True)
class Activity:
    """What happened, counted from the newest entries (from index ``since_index`` on)."""

    size: int
    since_index: int
    jobs_per_day: list[tuple[date, int]]
    refusals_by_rule: dict[str, int]
    releases_by_scenario: dict[str, int]
    totals: dict[str, int] = field(default_factory=dict)


def entry_time(entry: Entry) -> datetime:
    """When an entry was appended, as an aware datetime."""
    return datetime.fromisoformat(entry.time)


def entries(
    platform: Platform,
    principal: Principal,
    *,
    start: int = 0,
    stop: int | None = None,
    query: EntryQuery | None = None,
    scan: int = MAX_SCAN,
    limit: int | None = None,
) -> EntryPage:
    """Entries matching ``query`` among up to ``scan`` entries from ``start``; with ``limit``
    the read ends at that many matches and ``stop`` says where to go on from."""
    require_role(principal, AUDITORS, "reading the ledger")
    wanted = query or EntryQuery()
    size = platform.ledger.size
    end = min(size, stop if stop is not None else size, start + scan)
    first = min(start, end)
    found: list[Entry] = []
    for entry in platform.ledger.iter_entries(first, end):
        if wanted.matches(entry):
            found.append(entry)
            if limit is not None and len(found) >= limit:
                end = entry.index + 1
                break
    return EntryPage(size, start, end, found)


def entry(platform: Platform, principal: Principal, index: int) -> Entry:
    """One entry by index; InvalidRequest ``G-INPUT`` outside the log."""
    require_role(principal, AUDITORS, "reading the ledger")
    size = platform.ledger.size
    if not 0 <= index < size:
        raise InvalidRequest("G-INPUT", f"entry {index} does not exist: the log has {size} entries")
    return platform.ledger.entry(index)


def checkpoint(platform: Platform, principal: Principal) -> Checkpoint:
    """Sign a checkpoint over every entry, keep it, and return it."""
    require_role(principal, AUDITORS, "reading the ledger")
    platform.ledger.checkpoint()
    latest = platform.ledger.latest_checkpoint()
    assert latest is not None  # just signed
    _keep(platform, latest)
    return latest


def latest(platform: Platform, principal: Principal) -> Checkpoint | None:
    """The latest signed checkpoint as stored, without signing a new one."""
    require_role(principal, AUDITORS, "reading the ledger")
    return platform.ledger.latest_checkpoint()


def kept(platform: Platform, principal: Principal) -> list[Checkpoint]:
    """Every checkpoint signed here, smallest first, each verified with the log's key."""
    require_role(principal, AUDITORS, "reading the ledger")
    folder = platform.layout.checkpoints
    sizes = sorted(int(m[1]) for p in _listing(folder) if (m := _NOTE.fullmatch(p)))
    return [_kept(platform, size) for size in sizes]


def inclusion(platform: Platform, principal: Principal, index: int) -> dict[str, Any]:
    """The entry, its inclusion proof and a fresh checkpoint, as one bundle."""
    signed = checkpoint(platform, principal)
    if not 0 <= index < signed.size:
        raise InvalidRequest("G-INPUT", f"entry {index} does not exist: the log has {signed.size} entries")
    return inclusion_bundle(platform.ledger, index, signed)


def consistency(platform: Platform, principal: Principal, old_checkpoint: str) -> dict[str, Any]:
    """A bundle proving the log now extends ``old_checkpoint``, a signed note saved earlier."""
    signed = checkpoint(platform, principal)
    try:
        old = open_checkpoint(old_checkpoint, platform.ledger.public_key(), origin=platform.ledger.origin)
    except LedgerError as exc:
        raise InvalidRequest(
            "G-INPUT", f"the saved checkpoint does not verify with this ledger's key: {exc}"
        ) from None
    return _consistency(platform, old, signed)


def consistency_between(
    platform: Platform, principal: Principal, old_size: int, new_size: int
) -> dict[str, Any]:
    """A bundle proving the kept checkpoint of ``new_size`` extends the kept one of ``old_size``."""
    require_role(principal, AUDITORS, "reading the ledger")
    if old_size > new_size:
        raise InvalidRequest("G-INPUT", f"the older size {old_size} is larger than the newer {new_size}")
    return _consistency(platform, _kept(platform, old_size), _kept(platform, new_size))


def verify(
    platform: Platform, principal: Principal, progress: Callable[[int, int], None] | None = None
) -> VerifyReport:
    """Verify the whole log from its entries up, as ``veilbox ledger verify`` does, pinning the
    log's key; ``progress`` hears the bytes checked and the total."""
    require_role(principal, AUDITORS, "verifying the ledger")
    # In this process, not forked workers: a server's threads make forking unsafe.
    return verify_log(
        platform.ledger.path, public_key=platform.ledger.public_key(), workers=1, progress=progress
    )


def activity(platform: Platform, principal: Principal, *, days: int = 30) -> Activity:
    """Jobs submitted per day over the last ``days`` days, refusals by rule (of the policy,
    the privacy budget and access checks) and releases by scenario."""
    require_role(principal, AUDITORS, "reading the ledger")
    size = platform.ledger.size
    since = max(0, size - ACTIVITY_WINDOW)
    per_day: Counter[date] = Counter()
    refusals: Counter[str] = Counter()
    releases: Counter[str] = Counter()
    scenario_of: dict[str, str] = {}
    for found in platform.ledger.iter_entries(since, size):
        if found.action == "job.submitted":
            per_day[entry_time(found).date()] += 1
            scenario_of[found.subject] = str(found.details.get("scenario", "?"))
        elif found.action in _REFUSALS:
            # A budget refusal names the dataset, not a rule; DP-BUDGET is the API's rule for it.
            rule = "DP-BUDGET" if found.action == "budget.refused" else found.details.get("rule")
            refusals[str(rule)] += 1
        elif found.action == "result.released":
            releases[scenario_of.get(found.subject, "?")] += 1
    today = platform.control.now().date()
    span = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    return Activity(
        size=size,
        since_index=since,
        jobs_per_day=[(day, per_day[day]) for day in span],
        refusals_by_rule=dict(refusals.most_common()),
        releases_by_scenario=dict(releases.most_common()),
        totals={
            "jobs": sum(per_day.values()),
            "refusals": sum(refusals.values()),
            "releases": sum(releases.values()),
        },
    )


def _consistency(platform: Platform, old: Checkpoint, new: Checkpoint) -> dict[str, Any]:
    try:
        return consistency_bundle(platform.ledger, old, new)
    except LedgerError as exc:
        raise InvalidRequest("G-INPUT", str(exc)) from None


def _keep(platform: Platform, signed: Checkpoint) -> None:
    """Store a checkpoint under its size; the first one signed at a size stays."""
    folder = platform.layout.checkpoints
    folder.mkdir(exist_ok=True)
    path = folder / f"{signed.size}.note"
    if path.exists():
        return
    handle, staging = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(signed.note)
    os.replace(staging, path)


def _kept(platform: Platform, size: int) -> Checkpoint:
    try:
        note = (platform.layout.checkpoints / f"{size}.note").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidRequest("G-INPUT", f"no checkpoint was signed here at size {size}") from None
    return open_checkpoint(note, platform.ledger.public_key(), origin=platform.ledger.origin)


def _listing(folder: os.PathLike[str]) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []
