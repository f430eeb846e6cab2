"""PSI through the API: the enclave learns which of its enterprises are on a bank's list, the
match becomes a dataset only that scenario sees, aggregates over it are reviewed, and an exit
crypto-shreds it before the sweep deletes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from deid.datakeys import DataKeys
from deid.errors import KeyDestroyed
from deid.psi import answer_request
from gateway.workdir import Layout
from ledger import Ledger
from tests.gateway.api.conftest import World, add_scenario, drain, running_world
from tests.gateway.console.conftest import Visitor

CUSTOMERS = 40


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("psi"), start_runner=False) as built:
        _finance(built, ["uscc", "industry", "district", "registered_capital"])
        yield built


def _finance(world: World, columns: list[str]) -> None:
    add_scenario(
        world,
        "finance",
        {},
        name="普惠金融: 客户画像",
        purpose="industries of a bank's small-business customers, for credit products",
        datasets={"enterprises": columns},
        output_forms=["aggregate", "psi"],
    )


def _bank_list(world: World) -> list[str]:
    path = str(world.workdir.parent / "city" / "enterprises.parquet")
    rows = duckdb.execute(
        "SELECT uscc FROM read_parquet(?) ORDER BY uscc LIMIT ?", [path, CUSTOMERS]
    ).fetchall()
    return [r[0] for r in rows] + [f"91110000MA00000{i:02d}X" for i in range(10)]  # not in the city


def _spare_authorization(world: World) -> str:
    """A second authorization of the governance operator with a PSI scenario ``spare``; its id."""
    granted = world.post(
        "/v1/authorizations",
        {
            "operator_id": world.orgs["operator"]["id"],
            "mode": "whole",
            "datasets": ["enterprises"],
            "category": "public_welfare",
        },
    )
    applied = world.post(
        "/v1/scenarios",
        {
            "authorization_id": granted["id"],
            "name": "普惠金融: 续贷",
            "purpose": "industries of a bank's small-business customers, for renewing credit",
            "datasets": {"enterprises": ["uscc", "industry"]},
            "output_forms": ["aggregate", "psi"],
            "requested_epsilon": 1.0,
        },
        role="operator",
    )
    approval = {"terms": {"epsilon": 1.0, "query_epsilon": 0.5}, "reason": "fits its purpose"}
    world.scenarios["spare"] = world.post(f"/v1/scenarios/{applied['id']}/approve", approval, status=200)
    return str(granted["id"])


def _match(world: World, scenario: str = "finance") -> dict[str, Any]:
    started = world.post("/v1/psi", {"scenario_id": world.scenarios[scenario]["id"], "domain": "enterprise"},
                         "developer", status=202)  # fmt: skip
    drain(world)
    waiting = world.get(f"/v1/jobs/{started['id']}", "developer")
    assert waiting["status"] == "awaiting_reply", waiting
    request = world.client.get(f"/v1/psi/{started['id']}/request", headers=world.headers("developer"))
    assert request.status_code == 200 and request.headers["content-type"] == "application/octet-stream"
    reply, size, _ = answer_request(_bank_list(world), request.content, 5_000_000, 1)
    assert size == waiting["outcome"]["enclave_items"]
    answered = world.client.post(
        f"/v1/psi/{started['id']}/reply",
        content=reply,
        headers={**world.headers("developer"), "Content-Type": "application/octet-stream"},
    )
    assert answered.status_code == 202, answered.text
    again = world.client.post(
        f"/v1/psi/{started['id']}/reply",
        content=reply,
        headers={**world.headers("developer"), "Content-Type": "application/octet-stream"},
    )
    assert again.status_code == 409 and again.json()["rule"] == "G-STATE"
    drain(world)
    return dict(world.get(f"/v1/jobs/{started['id']}", "developer"))


def test_a_match_becomes_a_dataset_aggregates_can_join(idle: World) -> None:
    matched = _match(idle)
    assert matched["status"] == "matched", matched
    name = matched["outcome"]["dataset"]
    assert set(matched["outcome"]) == {"dataset"}  # how many matched is not told to the operator
    meter = idle.get(f"/v1/meters/{matched['id']}", "developer")  # both turns, the vault's datasets read
    assert meter["runs"] == 2 and [d["dataset"] for d in meter["datasets"]] == ["enterprises"]
    described = idle.get(f"/v1/catalog/{name}", "developer")
    assert [c["tag"] for c in described["columns"]] == ["identifier"]
    joined = f"FROM enterprises e JOIN {name} m ON e.uscc = m.uscc"
    job = idle.submit(f"SELECT e.industry, COUNT(*) AS firms {joined} GROUP BY 1", scenario="finance")
    assert job["status"] == "queued", job
    drain(idle)
    item = idle.get(f"/v1/reviews/{job['id']}?limit=1000", "reviewer")
    assert sum(row["firms"] for row in item["rows"]) == CUSTOMERS
    assert name in [s["name"] for s in item["evidence"]["sources"]]


def test_other_tenants_neither_see_nor_use_a_match(idle: World) -> None:
    matched = _match(idle)
    name = matched["outcome"]["dataset"]
    other = idle.client.get(f"/v1/catalog/{name}", headers=idle.headers("other_developer"))
    assert other.status_code == 404 and other.json()["rule"] == "G-TENANT"
    assert name not in [d["name"] for d in idle.get("/v1/catalog", "other_developer")]
    refused = idle.submit(f"SELECT COUNT(*) AS n FROM {name}", role="other_developer", scenario="other")
    assert refused["status"] == "refused" and refused["rule"].startswith("P-")
    stolen = idle.client.get(f"/v1/psi/{matched['id']}/request", headers=idle.headers("other_developer"))
    assert stolen.status_code == 404


def test_a_reply_must_be_binary_and_for_a_waiting_request(idle: World) -> None:
    started = idle.post("/v1/psi", {"scenario_id": idle.scenarios["finance"]["id"], "domain": "enterprise"},
                        "developer", status=202)  # fmt: skip
    as_json = idle.client.post(
        f"/v1/psi/{started['id']}/reply", json={"reply": "x"}, headers=idle.headers("developer")
    )
    assert as_json.status_code == 415
    early = idle.client.post(
        f"/v1/psi/{started['id']}/reply",
        content=b"\0" * 10,
        headers={**idle.headers("developer"), "Content-Type": "application/octet-stream"},
    )
    assert early.status_code == 409 and early.json()["rule"] == "G-STATE"
    drain(idle)
    garbage = idle.client.post(
        f"/v1/psi/{started['id']}/reply",
        content=b"not a reply",
        headers={**idle.headers("developer"), "Content-Type": "application/octet-stream"},
    )
    assert garbage.status_code == 202
    drain(idle)
    refused = idle.get(f"/v1/jobs/{started['id']}", "developer")
    assert refused["status"] == "refused" and refused["rule"] == "PSI-PROTOCOL", refused
    assert not list((idle.workdir / "enclave" / "psi").glob(f"{started['id']}*"))


def test_psi_needs_a_scenario_that_offers_it(idle: World) -> None:
    response = idle.client.post(
        "/v1/psi",
        json={"scenario_id": idle.scenarios["governance"]["id"], "domain": "enterprise"},
        headers=idle.headers("developer"),
    )
    assert response.status_code == 422 and response.json()["rule"] == "G-INPUT"


def _sealed(world: World, name: str) -> Path:
    return world.workdir / "enclave" / "derived" / f"{name}.sealed"


def _keys(world: World) -> Iterator[DataKeys]:
    layout = Layout(world.workdir)
    ledger = Ledger.open(layout.ledger)
    keys = DataKeys(layout.data_keys, ledger)
    try:
        yield keys
    finally:
        keys.close()
        ledger.close()


def test_an_exit_shreds_the_operators_matches_and_the_sweep_deletes_them(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with running_world(tmp_path_factory.mktemp("psi-exit"), start_runner=False, rows=500) as world:
        _finance(world, ["uscc", "industry"])
        kept = _spare_authorization(world)
        name = _match(world)["outcome"]["dataset"]
        spared = _match(world, "spare")["outcome"]["dataset"]
        assert (
            _sealed(world, name).exists()
            and not (world.workdir / "enclave" / "datasets" / f"{name}.duckdb").exists()
        )
        backup = _sealed(world, spared).read_bytes()

        # One authorization of two ends: the key lives; the sweep deletes the closed scenario's match.
        partial = world.post(
            f"/v1/authorizations/{world.authorizations['governance']['id']}/revoke",
            {"reason": "scenario no longer needed"},
            status=200,
        )
        report = partial["exit_report"]
        assert not report["exited"] and report["data_keys_destroyed"] == []
        assert (report["derived_datasets_pending_sweep"], report["derived_datasets_shredded"]) == ([name], [])
        drain(world)
        assert name not in [d["name"] for d in world.get("/v1/catalog", "authority")]
        assert not _sealed(world, name).exists() and _sealed(world, spared).exists()

        # The last one ends: the operator exits, every match of its is shredded at once.
        ended = world.post(f"/v1/authorizations/{kept}/revoke", {"reason": "terms breached"}, status=200)
        report = ended["exit_report"]
        assert report["exited"] and len(report["data_keys_destroyed"]) == 1
        assert (report["derived_datasets_shredded"], report["derived_datasets_pending_sweep"]) == (
            [spared],
            [],
        )
        for keys in _keys(world):
            with pytest.raises(KeyDestroyed, match="crypto-shredded"):
                keys.open(backup, "any context")
        page = (
            Visitor(world).sign_in("authority").get(f"/console/authority/authorizations/{kept}/exit-report")
        )
        assert spared in page.text
        drain(world)
        assert spared not in [d["name"] for d in world.get("/v1/catalog", "authority")]
        assert not list((world.workdir / "enclave" / "derived").iterdir())


def test_a_job_on_a_match_shredded_meanwhile_is_refused_and_the_catalog_still_answers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with running_world(tmp_path_factory.mktemp("psi-shredded"), start_runner=False, rows=500) as world:
        _finance(world, ["uscc", "industry"])
        name = _match(world)["outcome"]["dataset"]
        sql = f"SELECT e.industry, COUNT(*) AS firms FROM enterprises e JOIN {name} m ON e.uscc = m.uscc "
        sql += "GROUP BY 1"
        # The operator's exit destroys its key while this job waits for the runner.
        job = world.submit(sql, scenario="finance")
        for keys in _keys(world):
            keys.destroy(world.orgs["operator"]["id"], actor="platform:test", reason="the operator exited")
        drain(world)
        refused = world.get(f"/v1/jobs/{job['id']}", "developer")
        assert (refused["status"], refused["rule"]) == ("refused", "D-SHREDDED"), refused
        assert "crypto-shredded" in refused["reason"]
        # Browsing the catalog and mock data read the catalog alone: they keep working.
        assert [c["tag"] for c in world.get(f"/v1/catalog/{name}", "developer")["columns"]] == ["identifier"]
        mocked = world.post(
            "/v1/jobs",
            {"scenario_id": world.scenarios["finance"]["id"], "sql": sql, "mock": True},
            "developer",
            200,
        )
        assert mocked["marker"] == "MOCK"
        page = Visitor(world).sign_in("developer").get(f"/console/catalog/{name}")
        assert name in page.text
