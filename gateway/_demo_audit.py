"""The demo's last acts: the auditor checks the whole ledger offline, and tampering is caught."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ledger import PublicKey, verify_log


def verify_offline(ledger_dir: Path, auditor: Path, console: Console) -> None:
    """Verify every entry, the chain, the tree and the checkpoint saved earlier."""
    key = PublicKey.from_vkey((auditor / "ledger.vkey").read_text())
    saved = (auditor / "checkpoint-after-ingest").read_text()
    console.print(verify_log(ledger_dir, public_key=key, trusted_checkpoint=saved).summary())


def tamper(workdir: Path, ledger_dir: Path, auditor: Path, console: Console) -> None:
    """Attack copies of the ledger and show the verifier catching each attack."""
    key = PublicKey.from_vkey((auditor / "ledger.vkey").read_text())
    saved = (auditor / "checkpoint-after-ingest").read_text()
    table = Table("attack on a copy of the ledger", "verify says")
    for name, attack in _ATTACKS:
        copy = workdir / "tampered"
        shutil.copytree(ledger_dir, copy)
        attack(copy)
        table.add_row(name, verify_log(copy, public_key=key, trusted_checkpoint=saved).summary())
        shutil.rmtree(copy)
    console.print(table)
    console.print(
        f"\nTry it yourself: veilbox ledger verify {ledger_dir} --public-key {auditor / 'ledger.vkey'} "
        f"--checkpoint {auditor / 'checkpoint-after-ingest'}"
    )


def _edit_entry(path: Path) -> None:
    log = path / "entries.jsonl"
    data = log.read_bytes()
    log.write_bytes(data.replace(b'"level":3', b'"level":1', 1))


def _truncate(path: Path) -> None:
    log = path / "entries.jsonl"
    data = log.read_bytes()
    log.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 1])


def _swap(path: Path) -> None:
    log = path / "entries.jsonl"
    lines = log.read_bytes().split(b"\n")
    lines[4], lines[5] = lines[5], lines[4]
    log.write_bytes(b"\n".join(lines))


def _forge_signature(path: Path) -> None:
    note = (path / "checkpoint").read_text()
    head, _, encoded = note.rpartition(" ")
    blob = bytearray(base64.b64decode(encoded))
    blob[10] ^= 0x01  # inside the Ed25519 signature, after the 4-byte key ID
    (path / "checkpoint").write_text(f"{head} {base64.b64encode(bytes(blob)).decode()}\n")


_ATTACKS = [
    ("lower a dataset's classification level in its entry", _edit_entry),
    ("swap two entries", _swap),
    ("delete the last entry", _truncate),
    ("forge the checkpoint signature", _forge_signature),
]
