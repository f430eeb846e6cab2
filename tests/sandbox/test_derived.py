"""Datasets derived for one operator (PSI matches): sealed under the operator's data key,
joined in memory by that operator's jobs alone, crypto-shredded when it exits."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deid.datakeys import MAGIC, sealed_by
from deid.errors import KeyDestroyed
from deid.psi import PsiServer, pack_reply
from sandbox.catalog import Dataset
from sandbox.derived import INTEGRITY_RULE, SHREDDED_RULE, open_derived, store_match
from sandbox.enclave import Enclave
from sandbox.errors import IngestError, JobError, JobRefused
from sandbox.ingest import content_hash_of
from sandbox.jobs import QueryJob, execute_checked, run_query
from sandbox.limits import Limits
from sandbox.mock import MARKER, run_mock
from sandbox.policy import ScenarioPolicy
from sandbox.psi import Match, enclave_client_match, enclave_client_request
from sandbox.synth import generate_city
from tests.support import ingest_city

DOMAIN = "enterprise"
BANK, RIVAL = "org_bank", "org_rival"
BY_INDUSTRY = (
    "SELECT e.industry, COUNT(*) AS firms FROM enterprises e JOIN {name} m ON e.uscc = m.uscc GROUP BY 1"
)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("city")
    generate_city(2000, 11, out)
    return out


@pytest.fixture(scope="module")
def enclave(tmp_path_factory: pytest.TempPathFactory, city: Path) -> Iterator[Enclave]:
    """One worker, so a job always lands on the warm worker that served the one before it."""
    work = tmp_path_factory.mktemp("derived") / "work"
    with Enclave.open(work, limits=Limits(timeout_s=10, memory_mb=256), workers=1) as opened:
        ingest_city(opened, city, ("enterprises",))
        yield opened


@pytest.fixture(scope="module")
def usccs(city: Path) -> list[str]:
    return [str(v) for v in pq.read_table(city / "enterprises.parquet")["uscc"].to_pylist()]


def _psi(enclave: Enclave, operator_list: list[str], operator: str) -> Match:
    """A real PSI turn: the enclave asks, the operator answers over its own list."""
    session = enclave_client_request(enclave, DOMAIN, actor=operator)
    server = PsiServer(operator_list, reveal_intersection=True, structure="raw")
    reply = pack_reply(server.setup(session.client.size), server.respond(session.request))
    return enclave_client_match(enclave, session, reply)


def _store(enclave: Enclave, match: Match, name: str, operator: str, scenario: str = "scn_bank") -> Dataset:
    return store_match(
        enclave,
        match,
        name=name,
        column="uscc",
        level=2,
        scenario=scenario,
        operator=operator,
        actor=f"developer:{operator}",
    )


def _policy(enclave: Enclave, *names: str) -> ScenarioPolicy:
    return ScenarioPolicy({name: enclave.catalog.get(name) for name in ("enterprises", *names)})


def _job(enclave: Enclave, sql: str, operator: str, *names: str) -> QueryJob:
    return QueryJob(
        sql=sql,
        actor=f"developer:{operator}",
        scenario="scn",
        policy=_policy(enclave, *names),
        owner=operator,
    )


def _firms_by_industry(enclave: Enclave, pseudonyms: tuple[str, ...]) -> dict[str, int]:
    """What the join must count, read straight from the enterprises dataset's file."""
    con = duckdb.connect(str(enclave.paths.dataset("enterprises")), read_only=True)
    try:
        con.register("wanted", pa.table({"uscc": list(pseudonyms)}))
        rows = con.execute(
            "SELECT industry, COUNT(*) FROM enterprises WHERE uscc IN (SELECT uscc FROM wanted) GROUP BY 1"
        ).fetchall()
    finally:
        con.close()
    return {industry: n for industry, n in rows}


@pytest.fixture(scope="module")
def bank(enclave: Enclave, usccs: list[str]) -> tuple[Dataset, Match]:
    """The bank's match: 40 of its customers are the city's enterprises, 10 are not."""
    match = _psi(enclave, usccs[:40] + [f"91110000MA00000{i:02d}X" for i in range(10)], BANK)
    return _store(enclave, match, "psi_bank", BANK), match


def test_a_match_joins_in_memory_and_counts_as_a_plain_dataset_would(
    enclave: Enclave, bank: tuple[Dataset, Match]
) -> None:
    dataset, match = bank
    table = pa.table({"uscc": pa.array(match.pseudonyms, pa.string())})
    assert (dataset.row_count, dataset.unique_columns) == (40, ("uscc",))
    assert dataset.content_hash == content_hash_of(table)
    assert dataset.extra == {"derived": "psi_match", "scenario": "scn_bank", "operator": BANK,
                             "session": match.session_id}  # fmt: skip
    registered = [e for e in enclave.ledger.entries() if e.action == "dataset.registered"][-1]
    assert (registered.subject, registered.details["content_hash"]) == ("psi_bank", dataset.content_hash)

    outcome = run_query(enclave, _job(enclave, BY_INDUSTRY.format(name="psi_bank"), BANK, "psi_bank"))
    assert outcome.status == "quarantined", outcome.reason
    result, _ = enclave.quarantine.load(outcome.job_id)
    counted = dict(zip(result["industry"].to_pylist(), result["firms"].to_pylist(), strict=True))
    assert counted == _firms_by_industry(enclave, match.pseudonyms) and sum(counted.values()) == 40


def test_the_sealed_file_holds_no_pseudonym_or_identifier_in_clear(
    enclave: Enclave, bank: tuple[Dataset, Match], usccs: list[str]
) -> None:
    _, match = bank
    sealed = enclave.paths.derived_dataset("psi_bank").read_bytes()
    assert sealed_by(sealed)[0] == BANK
    for value in (*match.pseudonyms, *usccs[:40]):
        assert value.encode() not in sealed
    assert sorted(p.name for p in enclave.paths.derived.iterdir()) == ["psi_bank.sealed"]
    assert not enclave.paths.dataset("psi_bank").exists()  # never a DuckDB file a worker could attach


def test_no_other_job_reads_the_match_by_policy_search_path_guess_or_warm_worker(
    enclave: Enclave, bank: tuple[Dataset, Match]
) -> None:
    # Another scenario's policy does not hold it.
    refused = run_query(enclave, _job(enclave, "SELECT COUNT(*) AS n FROM psi_bank", RIVAL))
    assert refused.status == "refused" and refused.rule is not None and refused.rule.startswith("P-")
    # Below the policy: every attachable dataset attached, the match is not among them.
    attached, generation = enclave.attachments()
    assert "psi_bank" not in [name for name, _ in attached]
    # The owner's job runs first on the one worker; the next one, same engine, sees nothing.
    owner = BY_INDUSTRY.format(name="psi_bank")
    assert execute_checked(enclave, owner, frozenset({"enterprises", "psi_bank"})).num_rows > 0
    tables = {"psi_bank": open_derived(enclave, {"psi_bank"})["psi_bank"]}
    assert enclave.pool.run("SELECT COUNT(*) AS n FROM psi_bank", attached, generation, tables=tables)[
        "n"
    ].to_pylist() == [40]
    for guess in (
        "psi_bank",
        "temp.main.psi_bank",
        "temp.psi_bank",
        "ds_psi_bank.main.psi_bank",
        "main.psi_bank",
    ):
        with pytest.raises(JobError, match="Catalog"):
            enclave.pool.run(f"SELECT COUNT(*) AS n FROM {guess}", attached, generation)
    listed = enclave.pool.run(
        "SELECT table_name FROM information_schema.tables UNION ALL SELECT view_name FROM duckdb_views()",
        attached,
        generation,
    )
    assert "psi_bank" not in listed.column(0).to_pylist()
    with pytest.raises(JobError):
        execute_checked(enclave, "SELECT COUNT(*) AS n FROM psi_bank", frozenset({"enterprises"}))


def test_an_exit_shreds_the_match_and_every_backup_of_it(
    enclave: Enclave, usccs: list[str], tmp_path: Path
) -> None:
    operator = "org_exiting"
    match = _psi(enclave, usccs[40:70], operator)
    dataset = _store(enclave, match, "psi_exiting", operator)
    path = enclave.paths.derived_dataset("psi_exiting")
    backup = tmp_path / "backup.sealed"
    shutil.copy(path, backup)
    sql = BY_INDUSTRY.format(name="psi_exiting")
    assert run_query(enclave, _job(enclave, sql, operator, "psi_exiting")).status == "quarantined"
    blob, opened_with = backup.read_bytes(), _decryptor(enclave, "psi_exiting", operator)
    (live,) = _stored_keys(enclave, operator)
    assert live is not None and hashlib.sha256(opened_with(live)).hexdigest() == dataset.content_hash

    enclave.data_keys.destroy(operator, actor="authority:wang", reason="operator exited")

    outcome = run_query(enclave, _job(enclave, sql, operator, "psi_exiting"))
    assert (outcome.status, outcome.rule) == ("refused", SHREDDED_RULE)
    assert "crypto-shredded" in outcome.reason
    entry = enclave.ledger.entry(outcome.ledger_index)  # type: ignore[arg-type]
    assert (entry.action, entry.details["rule"]) == ("job.refused", SHREDDED_RULE)
    # The backup, restored in place, is as unreadable, to an enclave opened afresh with its master key too.
    path.unlink()
    shutil.copy(backup, path)
    with Enclave.open(enclave.paths.root, workers=1) as reopened:
        with pytest.raises(JobRefused) as refused:
            open_derived(reopened, {"psi_exiting"})
        assert refused.value.rule == SHREDDED_RULE
        with pytest.raises(KeyDestroyed):
            reopened.data_keys.open(backup.read_bytes(), "any context")
    # The key store keeps no key to try; the master key and keys derived from it do not open it.
    assert _stored_keys(enclave, operator) == [None]
    for key in (enclave.paths.master_key.read_bytes(), enclave.master.derive("data-keys")):
        with pytest.raises(InvalidTag):
            opened_with(key)
    for value in match.pseudonyms:
        assert value.encode() not in blob
    # What reads the catalog alone keeps working: the entry until the sweep, and mock data.
    assert enclave.catalog.get("psi_exiting").row_count == 30
    mocked = run_mock(sql, _policy(enclave, "psi_exiting"), rows=50)
    assert mocked.marker == MARKER and mocked.table.num_rows > 0


def _stored_keys(enclave: Enclave, owner: str) -> list[bytes | None]:
    """The key column of ``owner``'s rows, read straight from the key store's file."""
    db = sqlite3.connect(enclave.paths.data_keys)
    try:
        return [r[0] for r in db.execute("SELECT key FROM data_keys WHERE owner = ?", (owner,))]
    finally:
        db.close()


def _decryptor(enclave: Enclave, name: str, owner: str) -> Callable[[bytes], bytes]:
    """Decrypts the dataset's sealed file (as it is now) with a given AES key: header, nonce and
    associated data exactly as the seal made them, so only the key can be wrong."""
    blob = enclave.paths.derived_dataset(name).read_bytes()
    header_end = len(MAGIC) + 1 + len(owner.encode()) + 16
    header, nonce, ciphertext = blob[:header_end], blob[header_end : header_end + 12], blob[header_end + 12 :]
    dataset = enclave.catalog.get(name)
    aad = header + b"\0" + f"derived/{name}/{owner}/{dataset.content_hash}".encode()
    return lambda key: AESGCM(key).decrypt(nonce, ciphertext, aad)


def _flip(offset: int) -> Callable[[bytes, bytes], bytes]:
    def damage(blob: bytes, _: bytes) -> bytes:
        return blob[:offset] + bytes([blob[offset] ^ 0x01]) + blob[offset + 1 :]

    return damage


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_flip(-1), id="ciphertext"),
        pytest.param(_flip(-40), id="ciphertext-middle"),
        pytest.param(_flip(7), id="owner"),
        pytest.param(_flip(5 + 1 + len(BANK) + 3), id="key-id"),
        pytest.param(_flip(5 + 1 + len(BANK) + 16 + 2), id="nonce"),
        pytest.param(_flip(0), id="magic"),
        pytest.param(lambda blob, _: blob[:40], id="truncated"),
        pytest.param(lambda _, rival: rival, id="swapped-with-another-operator"),
        pytest.param(lambda blob, _: b"", id="emptied"),
    ],
)
def test_a_tampered_or_swapped_file_is_refused(
    enclave: Enclave,
    bank: tuple[Dataset, Match],
    usccs: list[str],
    damage: Callable[[bytes, bytes], bytes],
) -> None:
    if "psi_rival" not in [d.name for d in enclave.catalog.list()]:
        _store(enclave, _psi(enclave, usccs[:40], RIVAL), "psi_rival", RIVAL, scenario="scn_rival")
    path = enclave.paths.derived_dataset("psi_bank")
    original = path.read_bytes()
    try:
        path.write_bytes(damage(original, enclave.paths.derived_dataset("psi_rival").read_bytes()))
        with pytest.raises(JobRefused) as refused:
            open_derived(enclave, {"psi_bank"})
        assert refused.value.rule == INTEGRITY_RULE and "cannot be opened" in str(refused.value)
        assert RIVAL not in str(refused.value)  # never names whose data was moved here
        outcome = run_query(enclave, _job(enclave, BY_INDUSTRY.format(name="psi_bank"), BANK, "psi_bank"))
        assert (outcome.status, outcome.rule) == ("refused", INTEGRITY_RULE)
    finally:
        path.write_bytes(original)
    assert open_derived(enclave, {"psi_bank"})["psi_bank"].num_rows == 40


def test_a_file_moved_from_another_dataset_of_the_same_operator_is_refused(
    enclave: Enclave, bank: tuple[Dataset, Match], usccs: list[str]
) -> None:
    _store(enclave, _psi(enclave, usccs[:5], BANK), "psi_bank_small", BANK)
    path, other = enclave.paths.derived_dataset("psi_bank"), enclave.paths.derived_dataset("psi_bank_small")
    original = path.read_bytes()
    try:
        path.write_bytes(other.read_bytes())
        with pytest.raises(JobRefused, match="altered or moved") as refused:
            open_derived(enclave, {"psi_bank"})
        assert refused.value.rule == INTEGRITY_RULE
        path.unlink()
        with pytest.raises(JobRefused, match="missing"):
            open_derived(enclave, {"psi_bank"})
    finally:
        path.write_bytes(original)


def _leftovers(enclave: Enclave) -> list[str]:
    return sorted(p.name for p in enclave.paths.derived.iterdir())


def test_a_store_that_fails_leaves_nothing_behind(enclave: Enclave, usccs: list[str]) -> None:
    before, catalogued = _leftovers(enclave), [d.name for d in enclave.catalog.list()]
    # The operator's key was destroyed while its PSI ran: nothing is sealed, written or registered.
    enclave.data_keys.seal("org_gone", b"an earlier result", "job_1/result.arrow")
    enclave.data_keys.destroy("org_gone", actor="authority:wang", reason="operator exited")
    with pytest.raises(IngestError, match="crypto-shredded"):
        _store(enclave, _psi(enclave, usccs[:5], "org_gone"), "psi_gone", "org_gone")
    # The name is taken: the first dataset's file stays as it was.
    kept = enclave.paths.derived_dataset("psi_bank").read_bytes()
    with pytest.raises(IngestError, match="already registered"):
        _store(enclave, _psi(enclave, usccs[:5], BANK), "psi_bank", BANK)
    assert enclave.paths.derived_dataset("psi_bank").read_bytes() == kept
    # The file cannot be put in place: the registration just made is withdrawn.
    blocked = enclave.paths.derived_dataset("psi_blocked")
    blocked.mkdir()
    (blocked / "x").write_text("in the way")
    try:
        with pytest.raises(IngestError, match="could not be stored"):
            _store(enclave, _psi(enclave, usccs[:5], BANK), "psi_blocked", BANK)
    finally:
        shutil.rmtree(blocked)
    assert _leftovers(enclave) == before and [d.name for d in enclave.catalog.list()] == catalogued
    withdrawn = [e for e in enclave.ledger.entries() if e.subject == "psi_blocked"]
    assert [e.action for e in withdrawn] == ["dataset.registered", "dataset.unregistered"]
