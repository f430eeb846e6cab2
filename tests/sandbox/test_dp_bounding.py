"""Per-unit contribution bounding in each of its forms, and the measured fact that skips it.

A DP rewrite bounds every unit's rows one of three ways: no ranking where the catalog
measured the unit unique in the only table read, one hash aggregate with one row per unit,
or the rank windows otherwise. Each must keep what the guarantee's sensitivities assume.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sandbox.catalog import Column, Dataset, Tag
from sandbox.city import CITY_COLUMNS
from sandbox.dp import DpConfig, DpPlan, plan
from sandbox.enclave import Enclave
from sandbox.errors import CatalogError, PolicyViolation
from sandbox.ingest import IngestRequest, ingest
from sandbox.policy import ScenarioPolicy, check_query
from sandbox.synth import generate_city
from tests.support import ingest_city

TABLES = ("residents", "social_insurance")


@pytest.fixture(scope="module")
def enclave(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enclave]:
    root = tmp_path_factory.mktemp("bounding")
    generate_city(3000, 11, root / "city")
    with Enclave.open(root / "work", workers=1) as opened:
        ingest_city(opened, root / "city", TABLES)
        # The residents again, every row twice: the same people, no longer one row each.
        residents = pq.read_table(root / "city" / "residents.parquet")
        pq.write_table(pa.concat_tables([residents, residents]), root / "twice.parquet")
        declared = {c.name: c for c in CITY_COLUMNS["residents"]}
        ingest(
            opened,
            IngestRequest(
                "residents_twice", (root / "twice.parquet",), "civil_affairs", 3, declared=declared
            ),
        )
        yield opened


@pytest.fixture(scope="module")
def policy(enclave: Enclave) -> ScenarioPolicy:
    names = (*TABLES, "residents_twice")
    return ScenarioPolicy({n: enclave.catalog.get(n) for n in names}, allow_dp=True)


def _exact(enclave: Enclave, rewritten: DpPlan, tables: tuple[str, ...]) -> list[dict[str, object]]:
    datasets, generation = enclave.attachments()
    table = enclave.pool.run(
        rewritten.sql, [d for d in datasets if d[0] in tables], f"{generation}:{','.join(tables)}"
    )
    return table.to_pylist()


def _plain(
    enclave: Enclave, policy: ScenarioPolicy, sql: str, tables: tuple[str, ...]
) -> list[dict[str, object]]:
    datasets, generation = enclave.attachments()
    table = enclave.pool.run(
        check_query(sql, policy).render(),
        [d for d in datasets if d[0] in tables],
        f"{generation}:{','.join(tables)}",
    )
    return table.to_pylist()


def _plan(policy: ScenarioPolicy, sql: str, **bounds: int) -> DpPlan:
    return plan(check_query(sql, policy), DpConfig("residents", "resident_id", 1.0, **bounds), policy)


def test_ingest_measures_which_identifiers_hold_one_row_per_value(enclave: Enclave) -> None:
    assert enclave.catalog.get("residents").unique_columns == ("resident_id",)
    assert enclave.catalog.get("social_insurance").unique_columns == (), "twelve months per person"
    assert enclave.catalog.get("residents_twice").unique_columns == ()
    registered = [e for e in enclave.ledger.iter_entries() if e.action == "dataset.registered"]
    assert {e.subject: e.details["unique_columns"] for e in registered}["residents"] == ["resident_id"]


def test_a_unique_unit_is_not_ranked_and_every_row_counts(enclave: Enclave, policy: ScenarioPolicy) -> None:
    sql = "SELECT district, COUNT(*) AS n, SUM(household_size) AS people FROM residents GROUP BY district"
    rewritten = _plan(policy, sql, max_rows=3, max_groups=2)
    assert "hash(" not in rewritten.sql and "OVER" not in rewritten.sql
    exact = {r["__dp_g0"]: r for r in _exact(enclave, rewritten, ("residents",))}
    for row in _plain(enclave, policy, sql, ("residents",)):
        kept = exact[row["district"]]
        assert kept["__dp_n"] == kept["__dp_units"] == row["n"]
        assert kept["__dp_s0"] == row["people"] * 1000


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("SELECT district, COUNT(*) AS n FROM residents_twice GROUP BY district", ("residents_twice",)),
        (
            "SELECT r.district, COUNT(*) AS n FROM residents AS r "
            "JOIN social_insurance AS s ON r.resident_id = s.resident_id GROUP BY r.district",
            TABLES,
        ),
        ("SELECT district, COUNT(*) AS n FROM residents, residents_twice GROUP BY district", None),
    ],
    ids=["measured-not-unique", "join-of-a-unique-table", "cross-product"],
)
def test_a_unit_with_several_rows_is_always_bounded(
    enclave: Enclave, policy: ScenarioPolicy, sql: str, tables: tuple[str, ...] | None
) -> None:
    if tables is None:
        with pytest.raises(PolicyViolation):
            _plan(policy, sql)
        return
    rewritten = _plan(policy, sql)
    assert "hash(" in rewritten.sql
    rows = _exact(enclave, rewritten, tables)
    people = enclave.catalog.get("residents").row_count
    assert sum(r["__dp_n"] for r in rows) <= people, "one row per resident at most"


def _insured(enclave: Enclave, policy: ScenarioPolicy) -> int:
    """How many residents have social insurance rows, counted exactly."""
    sql = "SELECT COUNT(DISTINCT resident_id) AS n FROM social_insurance"
    return int(str(_plain(enclave, policy, sql, ("social_insurance",))[0]["n"]))


def test_one_row_per_unit_keeps_one_random_row_of_each(enclave: Enclave, policy: ScenarioPolicy) -> None:
    sql = "SELECT month, COUNT(*) AS n, SUM(base_salary) AS paid FROM social_insurance GROUP BY month"
    rewritten = _plan(policy, sql, max_rows=1, max_groups=4)
    assert "OVER" not in rewritten.sql, "one row per unit is one aggregate, not rank windows"
    rows = _exact(enclave, rewritten, ("social_insurance",))
    insured = _insured(enclave, policy)
    assert sum(r["__dp_n"] for r in rows) == sum(r["__dp_units"] for r in rows) == insured
    assert all(r["__dp_s0"] <= r["__dp_n"] * 50_000 * 1000 for r in rows), "clamped to the declared bound"
    # The seeded hash picks the month, not the order of months: no month takes a third.
    share = Counter({r["__dp_g0"]: r["__dp_n"] for r in rows})
    assert len(share) == 12 and max(share.values()) < insured / 3
    assert _exact(enclave, rewritten, ("social_insurance",)) == rows, "the same plan keeps the same rows"


def test_several_rows_per_unit_keep_the_rank_windows(enclave: Enclave, policy: ScenarioPolicy) -> None:
    sql = "SELECT month, COUNT(*) AS n FROM social_insurance GROUP BY month"
    rewritten = _plan(policy, sql, max_rows=3, max_groups=2)
    assert "OVER" in rewritten.sql
    rows = _exact(enclave, rewritten, ("social_insurance",))
    insured = _insured(enclave, policy)
    kept = sum(r["__dp_n"] for r in rows)
    # One row per month: two groups of a unit keep two of its rows, never its third.
    assert insured < kept <= 2 * insured
    assert sum(r["__dp_units"] for r in rows) == kept


def test_unique_columns_must_name_columns_and_old_entries_have_none() -> None:
    columns = (Column("person", "VARCHAR", Tag.IDENTIFIER, join_domain="person"),)
    with pytest.raises(CatalogError, match="unique columns"):
        Dataset("d", "p", 1, columns, unique_columns=("nobody",))
    assert Dataset("d", "p", 1, columns).unique_columns == ()
