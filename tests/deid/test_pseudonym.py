"""Keyed pseudonyms and the identifier vault: stable inside a join domain, useless outside it."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest

from deid.errors import DeidError, KeyMaterialError, VaultError
from deid.keys import MasterKey
from deid.pseudonym import Pseudonymizer, distinct_values, is_pseudonym
from deid.vault import IdentifierVault

ID = "11010519491231002X"


@pytest.fixture
def master(tmp_path: Path) -> MasterKey:
    return MasterKey.load_or_create(tmp_path / "keys" / "master.key")


def test_same_identifier_same_pseudonym_across_datasets_of_a_domain(master: MasterKey) -> None:
    p = Pseudonymizer(master)
    residents, _ = p.pseudonymize(pa.array([ID, "310101199001011234"]), "person")
    insurance, _ = p.pseudonymize(
        pa.chunked_array([pa.array([" 11010519491231002x"]), pa.array([ID, None])]), "person"
    )
    assert insurance.to_pylist()[:2] == [residents[0].as_py(), residents[0].as_py()]
    assert insurance.to_pylist()[2] is None
    assert all(is_pseudonym(v) for v in residents.to_pylist())


def test_domains_and_enclaves_give_unrelated_pseudonyms(master: MasterKey, tmp_path: Path) -> None:
    other_enclave = MasterKey.load_or_create(tmp_path / "other" / "master.key")
    assert Pseudonymizer(master).pseudonym(ID, "person") != Pseudonymizer(master).pseudonym(ID, "enterprise")
    assert Pseudonymizer(master).pseudonym(ID, "person") != Pseudonymizer(other_enclave).pseudonym(
        ID, "person"
    )


def test_pseudonyms_are_not_a_plain_hash_of_the_identifier(master: MasterKey) -> None:
    # A dictionary attack without the key: hash every candidate ID and look for a match.
    pseudonym = Pseudonymizer(master).pseudonym(ID, "person")
    for candidate in (ID, ID.lower(), "person" + ID):
        assert hashlib.sha256(candidate.encode()).hexdigest()[:30] not in pseudonym
    assert pseudonym != Pseudonymizer(MasterKey(bytes(32))).pseudonym(ID, "person")


def test_mobile_numbers_normalize_before_hashing(master: MasterKey) -> None:
    p = Pseudonymizer(master)
    forms = ["13800138000", "+86 138-0013-8000", "8613800138000", "138 0013 8000"]
    assert len({p.pseudonym(f, "phone") for f in forms}) == 1


def test_vectorized_and_single_pseudonyms_agree(master: MasterKey) -> None:
    p = Pseudonymizer(master)
    values = pa.array(["a1", "b2", "a1", None, "c3"])
    column, distinct = p.pseudonymize(values, "x")
    assert column.to_pylist() == [p.pseudonym(v, "x") if v else None for v in values.to_pylist()]
    assert distinct.to_pylist() == [p.pseudonym(v, "x") for v in distinct_values(values).to_pylist()]


@pytest.mark.parametrize("domain", ["", "Person", "has space", "x" * 40])
def test_bad_join_domains_are_refused(master: MasterKey, domain: str) -> None:
    with pytest.raises(DeidError, match="join domain"):
        Pseudonymizer(master).pseudonym(ID, domain)


def test_master_key_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    first = MasterKey.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert MasterKey.load_or_create(path).derive("vault") == first.derive("vault")
    assert first.derive("vault") != first.derive("pseudonym/person")
    assert "secret" in repr(first) and path.read_bytes().hex() not in repr(first)


def test_damaged_or_exposed_master_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    MasterKey.load_or_create(path)
    path.chmod(0o644)
    with pytest.raises(KeyMaterialError, match="readable by other users"):
        MasterKey.load_or_create(path)
    path.chmod(0o600)
    path.write_bytes(b"short")
    with pytest.raises(KeyMaterialError, match="damaged"):
        MasterKey.load_or_create(path)


def test_vault_round_trip_and_idempotent_store(master: MasterKey, tmp_path: Path) -> None:
    vault = IdentifierVault(tmp_path / "vault.sqlite", master)
    p = Pseudonymizer(master)
    ids = [ID, "310101199001011234"]
    pseudonyms = [p.pseudonym(v, "person") for v in ids]
    with vault.transaction():
        assert vault.store("person", pseudonyms, ids) == 2
        assert vault.store("person", pseudonyms, ids) == 0
    assert vault.reveal("person", pseudonyms[1]) == ids[1]
    assert dict(vault.members("person")) == dict(zip(pseudonyms, ids, strict=True))
    assert (tmp_path / "vault.sqlite").stat().st_mode & 0o777 == 0o600
    vault.close()


def test_vault_stores_only_ciphertext(master: MasterKey, tmp_path: Path) -> None:
    vault = IdentifierVault(tmp_path / "vault.sqlite", master)
    with vault.transaction():
        vault.store("person", ["psn_x"], [ID])
    vault.close()
    assert ID.encode() not in (tmp_path / "vault.sqlite").read_bytes()


def test_a_failed_ingest_leaves_the_vault_unchanged(master: MasterKey, tmp_path: Path) -> None:
    vault = IdentifierVault(tmp_path / "vault.sqlite", master)
    with pytest.raises(RuntimeError), vault.transaction():
        vault.store("person", ["psn_x"], [ID])
        raise RuntimeError("ingest failed later")
    assert vault.count("person") == 0


def test_tampered_or_moved_vault_rows_fail_authentication(master: MasterKey, tmp_path: Path) -> None:
    path = tmp_path / "vault.sqlite"
    vault = IdentifierVault(path, master)
    with vault.transaction():
        vault.store("person", ["psn_a", "psn_b"], ["A-raw", "B-raw"])
    db = sqlite3.connect(path)
    db.execute(
        "UPDATE identities SET ciphertext = (SELECT ciphertext FROM identities WHERE pseudonym = 'psn_b'), "
        "nonce = (SELECT nonce FROM identities WHERE pseudonym = 'psn_b') WHERE pseudonym = 'psn_a'"
    )
    db.commit()
    db.close()
    with pytest.raises(VaultError, match="fails authentication"):
        vault.reveal("person", "psn_a")
    with pytest.raises(VaultError, match="no identifier is stored"):
        vault.reveal("person", "psn_missing")
    other = IdentifierVault(path, MasterKey(bytes(32)))
    with pytest.raises(VaultError, match="fails authentication"):
        other.reveal("person", "psn_b")
