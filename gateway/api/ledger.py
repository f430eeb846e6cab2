"""``/v1/ledger``: the audit ledger for auditors and the authority — checkpoints, entries and
proofs, each downloadable and checkable offline with ``veilbox ledger verify-proof``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth import Caller, Services
from gateway.api.platform import Platform
from gateway.control import Principal, Role
from gateway.control.identity import require_role
from gateway.errors import InvalidRequest
from ledger import LedgerError
from ledger.bundle import consistency_bundle, inclusion_bundle
from ledger.note import Checkpoint, open_checkpoint

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])
AUDIT = frozenset({Role.AUDITOR, Role.AUTHORITY})
MAX_ENTRIES = 1000


class Consistency(BaseModel):
    """A checkpoint the caller saved earlier: the proof shows the log now extends it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "old_checkpoint": "veilbox.local/ledger\n"
                    "42\n"
                    "Rq/noc7QdfbzhHzzsrNoimP8QWP4Bgypxq5Ok5kjwcs=\n"
                    "\n"
                    "— veilbox.local/ledger UPuyFpynKYdjLo9EdSxxG6HfYuwoajanOO2iwOb1T3Wm62yWTEnBvkHw\n"
                }
            ]
        },
    )

    old_checkpoint: str = Field(min_length=1, max_length=10_000)


def _checkpoint(services: Platform, caller: Principal) -> Checkpoint:
    require_role(caller, AUDIT, "reading the ledger")
    services.ledger.checkpoint()
    latest = services.ledger.latest_checkpoint()
    assert latest is not None  # just signed
    return latest


@router.get("/checkpoint", summary="Sign and return a checkpoint over every entry")
def checkpoint(caller: Caller, services: Services) -> dict[str, Any]:
    """A fresh signed checkpoint (C2SP signed note) and the key to check it with."""
    latest = _checkpoint(services, caller)
    return {"size": latest.size, "checkpoint": latest.note, "public_key": services.ledger.public_key().vkey}


@router.get("/entries", summary="Entries by index range")
def entries(
    caller: Caller,
    services: Services,
    start: Annotated[int, Query(ge=0)] = 0,
    stop: Annotated[int | None, Query(ge=0)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    subject: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Up to 1,000 entries from ``start``: canonical JSON and leaf hash, optionally filtered."""
    require_role(caller, AUDIT, "reading the ledger")
    size = services.ledger.size
    end = min(size, stop if stop is not None else size, start + MAX_ENTRIES)
    found = []
    for index, entry in enumerate(services.ledger.iter_entries(min(start, end), end), start=min(start, end)):
        if (action and entry.action != action) or (actor and entry.actor != actor):
            continue
        if subject and entry.subject != subject:
            continue
        found.append({"index": index, "entry": entry.raw.decode("utf-8"), "leaf_hash": entry.leaf_hash.hex()})
    return {"size": size, "start": start, "stop": end, "entries": found}


@router.get("/proofs/inclusion/{index}", summary="An inclusion proof bundle for one entry")
def inclusion(index: int, caller: Caller, services: Services) -> dict[str, Any]:
    """The entry, its proof and a fresh checkpoint: ``veilbox ledger verify-proof`` checks it offline."""
    latest = _checkpoint(services, caller)
    if not 0 <= index < latest.size:
        raise InvalidRequest("G-INPUT", f"entry {index} does not exist: the log has {latest.size} entries")
    return inclusion_bundle(services.ledger, index, latest)


@router.post("/proofs/consistency", summary="Prove the log extends a checkpoint saved earlier")
def consistency(body: Consistency, caller: Caller, services: Services) -> dict[str, Any]:
    """A consistency bundle from the caller's saved checkpoint to a fresh one."""
    latest = _checkpoint(services, caller)
    try:
        old = open_checkpoint(
            body.old_checkpoint, services.ledger.public_key(), origin=services.ledger.origin
        )
    except LedgerError as exc:
        raise InvalidRequest(
            "G-INPUT", f"the saved checkpoint does not verify with this ledger's key: {exc}"
        ) from None
    try:
        return consistency_bundle(services.ledger, old, latest)
    except LedgerError as exc:
        raise InvalidRequest("G-INPUT", str(exc)) from None
