"""Tampering with a stored ledger: `veilbox ledger verify` exits 1 every time, naming what broke."""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from gateway.cli import app
from ledger import Ledger, PublicKey
from ledger._keys import create_signing_key
from ledger.note import sign_checkpoint
from tests.support import ORIGIN, fill

runner = CliRunner()
SIZE = 50
SAVED_AT = 30


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger of 50 entries with a checkpoint the auditor saved at 30 and one at 50."""
    base = tmp_path_factory.mktemp("pristine")
    with Ledger.open(base / "ledger", origin=ORIGIN) as log:
        fill(log, SAVED_AT)
        (base / "saved-checkpoint").write_text(log.checkpoint())
        fill(log, SIZE - SAVED_AT, start=SAVED_AT)
        log.checkpoint()
        (base / "ledger.vkey").write_text(log.public_key().vkey + "\n")
    return base


@pytest.fixture
def work(pristine: Path, tmp_path: Path) -> Path:
    shutil.copytree(pristine, tmp_path / "case")
    return tmp_path / "case"


def _verify(case: Path, *extra: str) -> tuple[int, str]:
    args = ["ledger", "verify", str(case / "ledger"), "--public-key", str(case / "ledger.vkey")]
    result = runner.invoke(app, [*args, "--checkpoint", str(case / "saved-checkpoint"), *extra])
    return result.exit_code, result.output


def _lines(case: Path) -> list[bytes]:
    return (case / "ledger/entries.jsonl").read_bytes().split(b"\n")[:-1]


def _write_lines(case: Path, lines: list[bytes]) -> None:
    (case / "ledger/entries.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


def _edit(index: int, old: bytes, new: bytes) -> Callable[[Path], None]:
    def attack(case: Path) -> None:
        lines = _lines(case)
        assert old in lines[index]
        lines[index] = lines[index].replace(old, new, 1)
        _write_lines(case, lines)

    return attack


def _failed_at(output: str) -> int | None:
    match = re.match(r"FAILED entry (\d+):", output)
    return int(match.group(1)) if match else None


def test_the_untouched_ledger_verifies(work: Path) -> None:
    code, output = _verify(work)
    assert code == 0, output
    assert output.startswith(f"ok: {ORIGIN}: {SIZE} entries chained")
    assert f"extends the saved checkpoint at size {SAVED_AT}" in output


@pytest.mark.parametrize("index", [0, 1, 17, 29, 30, 48, 49])
@pytest.mark.parametrize("field", ["details", "actor", "time", "structure"])
def test_one_changed_byte_in_any_entry(work: Path, index: int, field: str) -> None:
    lines = _lines(work)
    line = lines[index]
    at = {
        "details": line.index(b'"rows":') + 7,
        "actor": line.index(b'"actor":"') + 10,
        "time": line.index(b'"time":"') + 20,
        "structure": 0,
    }[field]
    lines[index] = line[:at] + bytes([line[at] ^ 0x01]) + line[at + 1 :]
    _write_lines(work, lines)
    code, output = _verify(work)
    assert code == 1, output
    assert _failed_at(output) == index, output


@pytest.mark.parametrize("index", [0, 12, 49])
def test_a_changed_prev_hash(work: Path, index: int) -> None:
    line = _lines(work)[index]
    prev = line[line.index(b'"prev":"') + 8 :][:64]
    _edit(index, prev, prev[:-1] + (b"0" if prev[-1:] != b"0" else b"1"))(work)
    code, output = _verify(work)
    assert code == 1
    assert _failed_at(output) in {max(index - 1, 0), index}, output


@pytest.mark.parametrize("index", [0, 20, SIZE - 1])
def test_a_deleted_entry(work: Path, index: int) -> None:
    lines = _lines(work)
    del lines[index]
    _write_lines(work, lines)
    code, output = _verify(work)
    assert code == 1
    assert _failed_at(output) == index, output


@pytest.mark.parametrize(("a", "b"), [(10, 11), (3, 40), (0, SIZE - 1)])
def test_two_swapped_entries(work: Path, a: int, b: int) -> None:
    lines = _lines(work)
    lines[a], lines[b] = lines[b], lines[a]
    _write_lines(work, lines)
    code, output = _verify(work)
    assert code == 1
    assert _failed_at(output) == a, output


@pytest.mark.parametrize("keep", [0, 1, SAVED_AT - 1, SIZE - 1])
def test_truncation(work: Path, keep: int) -> None:
    _write_lines(work, _lines(work)[:keep])
    code, output = _verify(work)
    assert code == 1
    assert "entries were removed" in output


def test_truncation_mid_line(work: Path) -> None:
    log = work / "ledger/entries.jsonl"
    log.write_bytes(log.read_bytes()[:-40])
    code, output = _verify(work)
    assert code == 1
    assert "entries were removed" in output


def test_an_appended_forgery(work: Path) -> None:
    lines = _lines(work)
    _write_lines(work, [*lines, lines[-1]])
    code, output = _verify(work)
    assert code == 1
    assert _failed_at(output) == SIZE


def _replace_signature(case: Path, signature: bytes) -> None:
    note = (case / "ledger/checkpoint").read_text()
    head, _, encoded = note.rpartition(" ")
    key_id = base64.b64decode(encoded)[:4]
    (case / "ledger/checkpoint").write_text(f"{head} {base64.b64encode(key_id + signature).decode()}\n")


def test_a_replaced_checkpoint_signature(work: Path) -> None:
    _replace_signature(work, bytes(64))
    code, output = _verify(work)
    assert code == 1
    assert "invalid signature" in output


def test_a_checkpoint_signed_by_another_key(work: Path) -> None:
    intruder = Ed25519PrivateKey.generate()
    with Ledger.open(work / "ledger") as log:
        root = log.root()
    (work / "ledger/checkpoint").write_text(sign_checkpoint(ORIGIN, SIZE, root, ORIGIN, intruder).note)
    code, output = _verify(work)
    assert code == 1
    assert "no signature by key" in output


def test_a_rolled_back_checkpoint(work: Path) -> None:
    (work / "ledger/checkpoint").write_text((work / "saved-checkpoint").read_text())
    with Ledger.open(work / "ledger") as log:
        newer = log.checkpoint()
    (work / "ledger/checkpoint").write_text((work / "saved-checkpoint").read_text())
    (work / "newer").write_text(newer)
    code, output = _verify_with_saved(work, work / "newer")
    assert code == 1
    assert "rolled back" in output


def _verify_with_saved(case: Path, saved: Path) -> tuple[int, str]:
    args = ["ledger", "verify", str(case / "ledger"), "--public-key", str(case / "ledger.vkey")]
    result = runner.invoke(app, [*args, "--checkpoint", str(saved)])
    return result.exit_code, result.output


def test_a_rewritten_history_signed_with_the_stolen_key_is_a_fork(work: Path) -> None:
    # The intruder holds the signing key: cuts history at 20, writes a different story,
    # and signs it. Only the auditor's saved checkpoint can reveal it.
    _write_lines(work, _lines(work)[:20])
    (work / "ledger/checkpoint").unlink()
    with Ledger.open(work / "ledger") as log:
        log.rebuild()
        fill(log, SIZE - 20, start=1000)
        log.checkpoint()
    code, output = _verify(work, "--public-key", str(work / "ledger.vkey"))
    assert code == 1
    assert "a fork" in output
    unpinned = runner.invoke(app, ["ledger", "verify", str(work / "ledger")])
    assert unpinned.exit_code == 0, "without a saved checkpoint a consistent rewrite is undetectable"


def test_a_substituted_key(work: Path) -> None:
    # The intruder replaces the key pair and re-signs: a pinned key catches it.
    key = create_signing_key(work / "ledger/signing.key")
    (work / "ledger/public.vkey").write_text(PublicKey.from_private(ORIGIN, key).vkey)
    (work / "ledger/checkpoint").unlink()
    with Ledger.open(work / "ledger") as log:
        log.checkpoint()
    assert runner.invoke(app, ["ledger", "verify", str(work / "ledger")]).exit_code == 0
    code, output = _verify(work)
    assert code == 1
    assert "checkpoint" in output


def test_verify_of_something_that_is_not_a_ledger(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ledger", "verify", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("FAILED ledger: not a readable ledger directory")
