"""Data keys: sealing per owner, binding to context, and crypto-shredding that leaves no key behind."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from deid.datakeys import MAGIC, DataKeys, is_sealed
from deid.errors import DataKeyError, KeyDestroyed
from ledger import Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger.open(tmp_path / "ledger")
    yield opened
    opened.close()


@pytest.fixture
def keys(tmp_path: Path, ledger: Ledger) -> Iterator[DataKeys]:
    opened = DataKeys(tmp_path / "keys" / "keys.sqlite", ledger)
    yield opened
    opened.close()


def _key_bytes(path: Path) -> list[bytes]:
    db = sqlite3.connect(path)
    try:
        return [bytes(r[0]) for r in db.execute("SELECT key FROM data_keys WHERE key IS NOT NULL")]
    finally:
        db.close()


def test_sealed_data_opens_only_in_its_context(keys: DataKeys) -> None:
    blob = keys.seal("org_a", b"cells", "job_1/result.arrow")
    assert is_sealed(blob) and b"cells" not in blob
    assert keys.open(blob, "job_1/result.arrow") == b"cells"
    with pytest.raises(DataKeyError, match="altered or moved"):
        keys.open(blob, "job_2/result.arrow")


def test_tampering_with_any_part_is_detected(keys: DataKeys) -> None:
    blob = keys.seal("org_a", b"cells", "ctx")
    for at in (len(MAGIC) + 2, len(blob) - 20, len(blob) - 1):
        changed = bytearray(blob)
        changed[at] ^= 0x01
        with pytest.raises(DataKeyError):
            keys.open(bytes(changed), "ctx")
    # Claiming another owner in the header changes the associated data.
    other = keys.seal("org_b", b"x", "ctx")
    swapped = blob.replace(b"org_a", b"org_b", 1)
    assert swapped != blob and other
    with pytest.raises(DataKeyError):
        keys.open(swapped, "ctx")


@pytest.mark.parametrize("blob", [b"", b"VBXK1", b"plain arrow bytes", MAGIC + b"\x05org_a" + b"\0" * 10])
def test_malformed_blobs_are_refused(keys: DataKeys, blob: bytes) -> None:
    with pytest.raises(DataKeyError):
        keys.open(blob, "ctx")


@pytest.mark.parametrize("owner", ["", "x" * 65])
def test_owners_are_checked(keys: DataKeys, owner: str) -> None:
    with pytest.raises(DataKeyError, match="owner"):
        keys.seal(owner, b"x", "ctx")


def test_one_key_per_owner_and_each_issue_is_recorded(keys: DataKeys, ledger: Ledger) -> None:
    keys.seal("org_a", b"1", "c1")
    keys.seal("org_a", b"2", "c2")
    keys.seal("org_b", b"3", "c3")
    assert len(keys.records("org_a")) == 1 and len(keys.records("org_b")) == 1
    issued = [e for e in ledger.iter_entries(0, ledger.size) if e.action == "datakey.issued"]
    assert sorted(e.subject for e in issued) == ["org_a", "org_b"]


def test_destroying_leaves_no_key_bytes_in_the_files(tmp_path: Path, keys: DataKeys, ledger: Ledger) -> None:
    path = tmp_path / "keys" / "keys.sqlite"
    blob = keys.seal("org_a", b"cells", "ctx")
    keys.seal("org_b", b"other", "ctx")
    (secret_a, secret_b) = _key_bytes(path)
    destroyed = keys.destroy("org_a", actor="usr_auth", reason="exit of org_a")
    assert [r.owner for r in destroyed] == ["org_a"]
    files = b"".join(p.read_bytes() for p in path.parent.iterdir() if p.is_file())
    assert secret_a not in files and secret_b in files
    with pytest.raises(KeyDestroyed, match="crypto-shredded"):
        keys.open(blob, "ctx")
    with pytest.raises(KeyDestroyed, match="crypto-shredded"):
        keys.seal("org_a", b"late", "ctx")
    entry = next(e for e in ledger.iter_entries(0, ledger.size) if e.action == "datakey.destroyed")
    assert entry.subject == "org_a" and entry.details["keys"][0]["key_id"] == destroyed[0].key_id
    assert keys.destroy("org_a", actor="usr_auth", reason="again") == []


def test_a_renewed_owner_gets_a_new_key_and_old_data_stays_shredded(keys: DataKeys) -> None:
    old = keys.seal("org_a", b"before", "ctx")
    keys.destroy("org_a", actor="usr_auth", reason="exit")
    assert keys.renew("org_never", actor="usr_auth") is None
    renewed = keys.renew("org_a", actor="usr_auth")
    assert renewed is not None and renewed.destroyed_at is None and len(keys.records("org_a")) == 2
    assert keys.open(keys.seal("org_a", b"after", "ctx"), "ctx") == b"after"
    with pytest.raises(KeyDestroyed):
        keys.open(old, "ctx")
    assert keys.renew("org_a", actor="usr_auth") is None and len(keys.records("org_a")) == 2


def test_a_blob_whose_key_is_unknown_is_unreadable(tmp_path: Path, keys: DataKeys, ledger: Ledger) -> None:
    blob = keys.seal("org_a", b"cells", "ctx")
    elsewhere = DataKeys(tmp_path / "other" / "keys.sqlite", ledger)
    try:
        with pytest.raises(KeyDestroyed, match="not in this store"):
            elsewhere.open(blob, "ctx")
    finally:
        elsewhere.close()


def test_concurrent_first_seals_issue_one_key(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "shared" / "keys.sqlite"
    stores = [DataKeys(path, ledger) for _ in range(4)]
    blobs: list[bytes] = []
    start = threading.Barrier(len(stores))

    def seal(store: DataKeys) -> None:
        start.wait()
        blobs.append(store.seal("org_a", b"cells", "ctx"))

    threads = [threading.Thread(target=seal, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(stores[0].records("org_a")) == 1
        assert all(stores[1].open(b, "ctx") == b"cells" for b in blobs) and len(blobs) == 4
    finally:
        for s in stores:
            s.close()
