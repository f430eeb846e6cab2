"""The ledger store: durable appends, proofs from stored nodes, recovery, and refusals."""

from __future__ import annotations

import errno
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import (
    Ledger,
    LedgerCorruptError,
    LedgerIOError,
    LedgerKeyError,
    NotALedgerError,
    ProofError,
    merkle,
    open_checkpoint,
    verify_log,
)
from ledger import _store as store
from ledger._compact import node_position
from ledger.entry import GENESIS_PREV
from tests.support import ORIGIN, fill


def test_append_returns_receipts_that_match_the_stored_entries(log: Ledger) -> None:
    receipts = [
        log.append("authority:bureau", "grant.created", f"op-{i}", {"term_years": 3}) for i in range(5)
    ]
    assert [r.index for r in receipts] == list(range(5))
    entries = log.entries()
    assert [e.leaf_hash for e in entries] == [r.leaf_hash for r in receipts]
    assert entries[0].prev == GENESIS_PREV
    for before, after in itertools.pairwise(entries):
        assert after.prev == before.leaf_hash.hex()
        assert after.time >= before.time
    assert entries[3].to_json()["details"] == {"term_years": 3}


def test_entries_survive_reopening(ledger_dir: Path) -> None:
    with Ledger.open(ledger_dir, origin=ORIGIN) as log:
        fill(log, 10)
        root = log.root()
    with Ledger.open(ledger_dir) as log:
        assert log.size == 10
        assert log.root() == root
        assert log.origin == ORIGIN
        log.append("a", "b", "c")
        assert log.size == 11


def test_store_roots_match_the_pure_functions_for_every_size(log: Ledger) -> None:
    fill(log, 70)
    leaves = [e.raw for e in log.entries()]
    for size in range(71):
        assert log.root(size) == merkle.root(leaves[:size])


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ledger, list[bytes]]]:
    with Ledger.open(tmp_path_factory.mktemp("ledger") / "l", origin=ORIGIN) as log:
        fill(log, 300)
        yield log, [e.raw for e in log.entries()]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), size=st.integers(min_value=1, max_value=300))
def test_store_proofs_equal_pure_proofs(
    filled: tuple[Ledger, list[bytes]], data: st.DataObject, size: int
) -> None:
    log, leaves = filled
    index = data.draw(st.integers(0, size - 1), label="index")
    old = data.draw(st.integers(0, size), label="old")
    proof = log.inclusion_proof(index, size)
    assert proof == merkle.inclusion_proof(leaves[:size], index)
    assert merkle.verify_inclusion(leaves[index], index, size, proof, log.root(size))
    consistency = log.consistency_proof(old, size)
    assert consistency == merkle.consistency_proof(leaves[:size], old)
    assert merkle.verify_consistency(old, size, log.root(old), log.root(size), consistency)


def test_proofs_for_positions_the_log_does_not_hold_are_refused(log: Ledger) -> None:
    fill(log, 4)
    with pytest.raises(ProofError, match="not in a tree of 4"):
        log.inclusion_proof(4)
    with pytest.raises(ProofError, match="has 4 entries, not 5"):
        log.root(5)
    with pytest.raises(ProofError, match="no consistency proof"):
        log.consistency_proof(3, 2)
    with pytest.raises(ProofError, match="outside a log of 4"):
        log.entries(2, 9)


def test_checkpoint_signs_the_durable_tree(log: Ledger) -> None:
    assert log.latest_checkpoint() is None
    fill(log, 9)
    note = log.checkpoint()
    checkpoint = open_checkpoint(note, log.public_key(), origin=ORIGIN)
    assert (checkpoint.size, checkpoint.root) == (9, log.root())
    assert log.latest_checkpoint() == checkpoint
    assert note.splitlines()[:2] == [ORIGIN, "9"]
    assert len(log.public_key().raw) == 32


def test_signing_key_is_private_and_stable(ledger_dir: Path) -> None:
    with Ledger.open(ledger_dir) as log:
        first = log.public_key()
    assert (ledger_dir / "signing.key").stat().st_mode & 0o777 == 0o600
    with Ledger.open(ledger_dir) as log:
        assert log.public_key() == first
    assert (ledger_dir / "public.vkey").read_text().strip() == first.vkey


# ------------------------------------------------------------------- bad input


def test_a_file_is_not_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("hello")
    with pytest.raises(NotALedgerError, match="is a file"):
        Ledger.open(path)


def test_a_directory_of_other_things_is_not_a_ledger(tmp_path: Path) -> None:
    (tmp_path / "report.csv").write_text("a,b\n")
    with pytest.raises(NotALedgerError, match=r"holds report\.csv"):
        Ledger.open(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.csv"]  # nothing was created


def test_origin_is_fixed_at_creation(ledger_dir: Path) -> None:
    Ledger.open(ledger_dir, origin=ORIGIN).close()
    with pytest.raises(NotALedgerError, match="is the ledger"):
        Ledger.open(ledger_dir, origin="another.example/log")


@pytest.mark.parametrize("origin", ["has space", "a+b", ""])
def test_unusable_origins_are_refused(tmp_path: Path, origin: str) -> None:
    with pytest.raises(Exception, match="origin"):
        Ledger.open(tmp_path / "l", origin=origin)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (
            lambda p: p.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n"),
            "corrupted",
        ),
        (lambda p: p.write_bytes(b""), "corrupted"),
        (lambda p: p.unlink(), "missing"),
        (lambda p: p.chmod(0o644), "readable by other users"),
    ],
)
def test_a_damaged_key_file_is_a_clear_error(ledger_dir: Path, damage: object, problem: str) -> None:
    Ledger.open(ledger_dir).close()
    damage(ledger_dir / "signing.key")  # type: ignore[operator]
    with pytest.raises(LedgerKeyError, match=problem):
        Ledger.open(ledger_dir)


def test_a_non_ed25519_key_is_refused(ledger_dir: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    Ledger.open(ledger_dir).close()
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    (ledger_dir / "signing.key").write_bytes(pem)
    with pytest.raises(LedgerKeyError, match="not an Ed25519 key"):
        Ledger.open(ledger_dir)


def test_a_damaged_description_is_not_a_ledger(ledger_dir: Path) -> None:
    Ledger.open(ledger_dir).close()
    (ledger_dir / "ledger.json").write_text("{not json")
    with pytest.raises(NotALedgerError, match="not a readable ledger description"):
        Ledger.open(ledger_dir)
    (ledger_dir / "ledger.json").write_text(json.dumps({"format": "veilbox-ledger/9", "origin": ORIGIN}))
    with pytest.raises(NotALedgerError, match="veilbox-ledger/9"):
        Ledger.open(ledger_dir)


def test_a_closed_ledger_refuses_work(log: Ledger) -> None:
    log.close()
    with pytest.raises(Exception, match="closed"):
        log.append("a", "b", "c")


# ------------------------------------------------------------------- recovery


def test_torn_final_line_is_cut_off_on_open(ledger_dir: Path) -> None:
    with Ledger.open(ledger_dir) as log:
        fill(log, 5)
        root = log.root()
    with (ledger_dir / "entries.jsonl").open("ab") as f:
        f.write(b'{"action":"job.submitted","actor":"dev","det')  # a crash mid-append
    with Ledger.open(ledger_dir) as log:
        assert (log.size, log.root()) == (5, root)
        log.append("a", "b", "c")
    assert verify_log(ledger_dir).ok


def test_complete_entries_past_the_index_are_adopted(ledger_dir: Path) -> None:
    # A writer that wrote its entries but died before its index records.
    with Ledger.open(ledger_dir) as log:
        fill(log, 6)
        root6 = log.root()
    index = ledger_dir / "entries.idx"
    index.write_bytes(index.read_bytes()[: 4 * 8])
    with Ledger.open(ledger_dir) as log:
        assert (log.size, log.root()) == (6, root6)


def test_partial_index_record_is_discarded(ledger_dir: Path) -> None:
    with Ledger.open(ledger_dir) as log:
        fill(log, 3)
    with (ledger_dir / "entries.idx").open("ab") as f:
        f.write(b"\x01\x02\x03")
    with Ledger.open(ledger_dir) as log:
        assert log.size == 3
        assert merkle.verify_inclusion(log.entry(2).raw, 2, 3, log.inclusion_proof(2), log.root())


@pytest.mark.parametrize("derived", ["tree.nodes", "entries.idx"])
@pytest.mark.parametrize("damage", ["delete", "truncate", "garble"])
def test_derived_files_are_rebuilt_from_the_entries(ledger_dir: Path, derived: str, damage: str) -> None:
    with Ledger.open(ledger_dir) as log:
        fill(log, 37)
        root = log.root()
    path = ledger_dir / derived
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:40])
    else:
        data = bytearray(path.read_bytes())
        data[-3] ^= 0xFF
        path.write_bytes(bytes(data))
    with Ledger.open(ledger_dir) as log:
        assert (log.size, log.root()) == (37, root)


def test_a_damaged_entry_past_the_index_stops_the_open(ledger_dir: Path) -> None:
    with Ledger.open(ledger_dir) as log:
        fill(log, 3)
    with (ledger_dir / "entries.jsonl").open("ab") as f:
        f.write(b'{"forged":"entry"}\n')
    with pytest.raises(LedgerCorruptError, match="entry 3 at byte"):
        Ledger.open(ledger_dir)
    assert b"forged" in (ledger_dir / "entries.jsonl").read_bytes()  # evidence kept


def test_entries_removed_behind_the_index_are_reported(ledger_dir: Path) -> None:
    log = Ledger.open(ledger_dir)
    fill(log, 5)
    data = (ledger_dir / "entries.jsonl").read_bytes()
    (ledger_dir / "entries.jsonl").write_bytes(data[: data.index(b"\n") + 1])
    with pytest.raises(LedgerCorruptError, match="shorter than its index"):
        log.append("a", "b", "c")
    log.close()


# ------------------------------------------------------------------- faults


def test_a_writer_catching_up_never_stamps_an_entry_earlier_than_the_last(
    ledger_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other writer's clock runs ahead: this one must carry its time forward, not go back.
    ahead, behind = Ledger.open(ledger_dir), Ledger.open(ledger_dir)
    try:
        behind.append("b", "first", "s")
        monkeypatch.setattr(store, "utc_now", lambda: "2999-01-01T00:00:00.000001Z")
        ahead.append("a", "ahead", "s")
        monkeypatch.undo()
        behind.append("b", "caught up", "s")
        assert [e.time for e in behind.entries()][1:] == ["2999-01-01T00:00:00.000001Z"] * 2
    finally:
        ahead.close()
        behind.close()
    assert verify_log(ledger_dir).ok


def test_a_damaged_time_on_the_last_entry_stops_a_writer_catching_up(ledger_dir: Path) -> None:
    first, second = Ledger.open(ledger_dir), Ledger.open(ledger_dir)
    try:
        first.append("a", "b", "c")
        entries = ledger_dir / "entries.jsonl"
        data = entries.read_bytes()
        damaged = data[:-4] + b'x"}\n'  # the same length; its time no longer ends in Z
        entries.write_bytes(damaged)
        for _ in range(2):  # a retry is refused too: the failed catch-up took none of the state
            with pytest.raises(LedgerCorruptError, match="entry 0 cannot be read back"):
                second.append("d", "e", "f")
        assert entries.read_bytes() == damaged
    finally:
        first.close()
        second.close()


def test_a_failed_write_leaves_nothing_half_written(log: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(log, 4)
    root = log.root()
    real = os.pwrite
    calls = {"n": 0}

    def pwrite_then_fail(fd: int, data: bytes, offset: int) -> int:
        calls["n"] += 1
        if calls["n"] == 2:  # the log write succeeded; the node write hits a full disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite_then_fail)
    with pytest.raises(LedgerIOError, match="nothing was written"):
        log.append("a", "b", "c")
    monkeypatch.setattr(os, "pwrite", real)
    assert (log.size, log.root()) == (4, root)
    log.append("a", "b", "c")
    assert log.size == 5
    assert verify_log(log.path).ok


def test_a_failed_sync_is_reported_and_stops_further_appends(
    log: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(log, 2)

    def failing_sync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fdatasync", failing_sync)
    with pytest.raises(LedgerIOError, match="syncing"):
        log.append("a", "b", "c")
    monkeypatch.undo()
    with pytest.raises(LedgerIOError, match="refuses further appends"):
        log.append("a", "b", "c")
    with Ledger.open(log.path) as reopened:
        assert reopened.size == 3  # the unacknowledged entry is on disk; a reopen re-checks it
        assert verify_log(log.path).ok


def test_damaged_node_hashes_are_never_signed(ledger_dir: Path) -> None:
    with Ledger.open(ledger_dir) as log:
        fill(log, 40)
        log.checkpoint()
        fill(log, 10, start=40)
        good_root = log.root()
        nodes = ledger_dir / "tree.nodes"
        data = bytearray(nodes.read_bytes())
        data[node_position(5, 0) * 32] ^= 0x01  # the subtree over entries 0-31, already signed
        nodes.write_bytes(bytes(data))
        with pytest.raises(LedgerCorruptError, match="does not extend the last checkpoint"):
            log.checkpoint()
        assert log.latest_checkpoint().size == 40  # type: ignore[union-attr]
        log.rebuild()
        assert log.root() == good_root
        assert open_checkpoint(log.checkpoint(), log.public_key()).size == 50


def test_damaged_offsets_are_reported_and_rebuilt(log: Ledger) -> None:
    fill(log, 20)
    index = log.path / "entries.idx"
    data = bytearray(index.read_bytes())
    data[8 * 5 : 8 * 6] = (10**12).to_bytes(8, "little")
    index.write_bytes(bytes(data))
    with pytest.raises(LedgerCorruptError, match="ledger rebuild"):
        log.entries(6, 8)  # entry 6 starts where the damaged record says entry 5 ends
    log.rebuild()
    assert [e.index for e in log.entries(6, 8)] == [6, 7]


def test_a_rolled_back_log_is_never_signed(log: Ledger) -> None:
    fill(log, 8)
    log.checkpoint()
    data = (log.path / "entries.jsonl").read_bytes()
    cut = data.index(b"\n", len(data) // 2) + 1
    (log.path / "entries.jsonl").write_bytes(data[:cut])
    log.rebuild()
    with pytest.raises(LedgerCorruptError, match="entries were removed"):
        log.checkpoint()


def test_operating_system_errors_surface_as_ledger_errors(
    log: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(log, 3)

    def failing_fstat(fd: int) -> os.stat_result:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fstat", failing_fstat)
    with pytest.raises(LedgerIOError, match="Input/output error"):
        log.root()
    with pytest.raises(LedgerIOError):
        log.append("a", "b", "c")
    monkeypatch.undo()
    assert log.size == 3


def test_verification_reports_its_progress_run_by_run(
    ledger_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ledger.verify

    with Ledger.open(ledger_dir) as log:
        fill(log, 40)
    monkeypatch.setattr(ledger.verify, "_CHUNK", 1024)  # many runs from a small log
    heard: list[tuple[int, int]] = []
    assert verify_log(ledger_dir, progress=lambda done, total: heard.append((done, total))).ok
    total = (ledger_dir / "entries.jsonl").stat().st_size
    assert len(heard) > 3 and {t for _, t in heard} == {total}
    assert [d for d, _ in heard] == sorted({d for d, _ in heard}) and heard[-1][0] == total
