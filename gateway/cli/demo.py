"""``veilbox demo``: the end-to-end story on the embedded default, printed step by step.

Today the story is the audit ledger's: the platform records what happens in a city's
data enclave, signs checkpoints, and an auditor — holding only the public key and the
checkpoints it saved — verifies everything, proves single entries and catches tampering.
"""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from ledger import Ledger, verify_log
from ledger.bundle import consistency_bundle, inclusion_bundle, verify_bundle
from ledger.note import open_checkpoint

MARKER = ".veilbox-demo"
ORIGIN = "veilbox.demo/city-ledger"

# A day on the platform, in the roles and steps of DESIGN.md.
_EVENTS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("provider:civil-affairs", "dataset.registered", "residents", {"rows": 100_000, "level": 3}),
    ("provider:market-regulation", "dataset.registered", "enterprises", {"rows": 5_000, "level": 2}),
    (
        "authority:data-bureau",
        "authorization.granted",
        "operator:city-data-co",
        {"mode": "domain", "term_years": 3},
    ),
    ("operator:city-data-co", "scenario.applied", "governance", {"purpose": "population by district"}),
    ("authority:data-bureau", "scenario.approved", "governance", {"epsilon": 1.0, "min_cell": 10}),
    ("developer:alice", "job.submitted", "job", {"scenario": "governance", "kind": "sql"}),
    ("sandbox", "job.finished", "job", {"status": "pending_review"}),
    ("reviewer:bob", "review.approved", "job", {"reason": "aggregate, cells >= 10"}),
    ("gateway", "release.published", "job", {"format": "csv"}),
]


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its data.")] = Path("veilbox-demo"),
    events: Annotated[int, typer.Option(min=10, help="How many platform events to record.")] = 20_000,
    force: Annotated[bool, typer.Option(help="Replace an earlier demo in WORKDIR.")] = False,
) -> None:
    """Record platform events in a ledger, checkpoint, prove, verify and catch tampering."""
    console = Console(highlight=False, soft_wrap=True)
    _prepare(workdir, force)
    console.print(Panel.fit("Veilbox — the audit ledger, end to end", style="bold"))

    console.rule("1. The platform opens its ledger")
    log = Ledger.open(workdir / "ledger", origin=ORIGIN)
    auditor = workdir / "auditor"
    auditor.mkdir()
    vkey = log.public_key().vkey
    (auditor / "ledger.vkey").write_text(vkey + "\n")
    console.print(f"origin [bold]{log.origin}[/]; the auditor pins its verifier key:\n  {vkey}")

    console.rule("2. A day of operations, recorded by 8 concurrent services")
    rate = _record(log, events // 2, threads=8)
    console.print(f"{log.size:,} entries appended durably at {rate:,.0f} entries/s (group commit)")

    console.rule("3. A signed checkpoint, which the auditor saves")
    first = log.checkpoint()
    (auditor / "checkpoint-1").write_text(first)
    console.print(first.rstrip())

    console.rule("4. More operations, a second checkpoint")
    _record(log, events - events // 2, threads=8)
    second = log.checkpoint()
    (auditor / "checkpoint-2").write_text(second)
    console.print(second.rstrip())

    console.rule("5. The auditor verifies the whole log offline")
    report = verify_log(log.path, public_key=log.public_key(), trusted_checkpoint=first)
    console.print(report.summary())

    console.rule("6. One release's inclusion, proven from a bundle and the public key alone")
    key = log.public_key()
    newer = open_checkpoint(second, key)
    release = next(
        e for e in reversed(log.entries(newer.size - 50, newer.size)) if e.action == "release.published"
    )
    bundle = inclusion_bundle(log, release.index, newer)
    (auditor / "release-proof.json").write_text(json.dumps(bundle, indent=2, ensure_ascii=False))
    console.print(f"{len(bundle['proof'])} hashes prove it: {verify_bundle(bundle, key)}")
    proof = consistency_bundle(log, open_checkpoint(first, key), newer)
    console.print(f"consistency ({len(proof['proof'])} hashes): {verify_bundle(proof, key)}")
    log.close()

    console.rule("7. Tampering is caught")
    table = Table("attack on a copy of the ledger", "verify says")
    for name, attack in _ATTACKS:
        copy = workdir / f"tampered-{name.split()[0]}"
        shutil.copytree(workdir / "ledger", copy)
        attack(copy)
        result = verify_log(copy, public_key=key, trusted_checkpoint=first)
        table.add_row(name, result.summary())
        shutil.rmtree(copy)
    console.print(table)
    console.print(
        f"\nThe ledger is in {workdir / 'ledger'}; try "
        f"'veilbox ledger verify {workdir / 'ledger'} --public-key {auditor / 'ledger.vkey'} "
        f"--checkpoint {auditor / 'checkpoint-1'}'."
    )


def _prepare(workdir: Path, force: bool) -> None:
    if workdir.exists() and any(workdir.iterdir()):
        if not force:
            raise typer.BadParameter(f"{workdir} is not empty; pass --force to replace an earlier demo")
        if not (workdir / MARKER).exists():
            raise typer.BadParameter(f"{workdir} holds something other than a Veilbox demo; not replacing it")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("created by 'veilbox demo'\n")


def _record(log: Ledger, count: int, threads: int) -> float:
    def worker(offset: int) -> None:
        for i in range(offset, count, threads):
            actor, action, subject, details = _EVENTS[i % len(_EVENTS)]
            log.append(
                actor, action, f"{subject}-{i // len(_EVENTS)}" if subject == "job" else subject, details
            )

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return count / (time.perf_counter() - start)


def _flip_byte(path: Path) -> None:
    log = path / "entries.jsonl"
    data = bytearray(log.read_bytes())
    at = data.index(b'"rows":100000')
    data[at + 8] = ord("9")
    log.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    log = path / "entries.jsonl"
    data = log.read_bytes()
    log.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 1])


def _swap(path: Path) -> None:
    log = path / "entries.jsonl"
    lines = log.read_bytes().split(b"\n")
    lines[10], lines[11] = lines[11], lines[10]
    log.write_bytes(b"\n".join(lines))


def _forge_signature(path: Path) -> None:
    note = (path / "checkpoint").read_text()
    head, _, encoded = note.rpartition(" ")
    blob = bytearray(base64.b64decode(encoded))
    blob[10] ^= 0x01  # inside the Ed25519 signature, after the 4-byte key ID
    (path / "checkpoint").write_text(f"{head} {base64.b64encode(bytes(blob)).decode()}\n")


_ATTACKS = [
    ("edit one byte of an old entry", _flip_byte),
    ("swap two entries", _swap),
    ("truncate the last entry", _truncate),
    ("forge the checkpoint signature", _forge_signature),
]
