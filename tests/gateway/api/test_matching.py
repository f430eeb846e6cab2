"""PSI through the API: the enclave learns which of its enterprises are on a bank's list, the
match becomes a dataset only that scenario sees, aggregates over it are reviewed, and an exit
deletes it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from deid.psi import answer_request
from tests.gateway.api.conftest import World, add_scenario, drain, running_world

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


def _match(world: World) -> dict[str, Any]:
    started = world.post("/v1/psi", {"scenario_id": world.scenarios["finance"]["id"], "domain": "enterprise"},
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


def test_an_exit_deletes_the_operators_matches(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_world(tmp_path_factory.mktemp("psi-exit"), start_runner=False, rows=500) as world:
        _finance(world, ["uscc", "industry"])
        name = _match(world)["outcome"]["dataset"]
        assert (world.workdir / "enclave" / "datasets" / f"{name}.duckdb").exists()
        world.post(
            f"/v1/authorizations/{world.authorizations['governance']['id']}/revoke",
            {"reason": "terms breached"},
            status=200,
        )
        drain(world)
        assert name not in [d["name"] for d in world.get("/v1/catalog", "authority")]
        assert not (world.workdir / "enclave" / "datasets" / f"{name}.duckdb").exists()
