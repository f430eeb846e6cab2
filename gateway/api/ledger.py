"""``/v1/ledger``: the audit ledger for auditors and the authority — checkpoints, entries and
proofs, each downloadable and checkable offline with ``veilbox ledger verify-proof``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway import audit
from gateway.api.auth import Caller, Services

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])


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


@router.get("/checkpoint", summary="Sign and return a checkpoint over every entry")
def checkpoint(caller: Caller, services: Services) -> dict[str, Any]:
    """A fresh signed checkpoint (C2SP signed note) and the key to check it with."""
    latest = audit.checkpoint(services, caller)
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
    query = audit.EntryQuery(action=action, actor=actor, subject=subject)
    found = audit.entries(services, caller, start=start, stop=stop, query=query)
    return {
        "size": found.size,
        "start": found.start,
        "stop": found.stop,
        "entries": [
            {"index": e.index, "entry": e.raw.decode("utf-8"), "leaf_hash": e.leaf_hash.hex()}
            for e in found.entries
        ],
    }


@router.get("/proofs/inclusion/{index}", summary="An inclusion proof bundle for one entry")
def inclusion(index: int, caller: Caller, services: Services) -> dict[str, Any]:
    """The entry, its proof and a fresh checkpoint: ``veilbox ledger verify-proof`` checks it offline."""
    return audit.inclusion(services, caller, index)


@router.post("/proofs/consistency", summary="Prove the log extends a checkpoint saved earlier")
def consistency(body: Consistency, caller: Caller, services: Services) -> dict[str, Any]:
    """A consistency bundle from the caller's saved checkpoint to a fresh one."""
    return audit.consistency(services, caller, body.old_checkpoint)
