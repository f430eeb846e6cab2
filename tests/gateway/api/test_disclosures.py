"""The public disclosure over HTTP: the authority publishes, anyone reads without a token,
and a saved disclosure checks offline with the ledger's pinned key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from tests.gateway.api.conftest import World, drain, running_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The job the disclosure counts is run by a runner drained in this process."""
    with running_world(tmp_path_factory.mktemp("disclosures"), start_runner=False) as built:
        yield built


def test_the_authority_publishes_and_anyone_reads(world: World, tmp_path: Path) -> None:
    world.submit("SELECT district, COUNT(*) AS n FROM residents GROUP BY district")
    drain(world)
    denied = world.client.post("/v1/disclosures", json={}, headers=world.headers("operator"))
    assert denied.status_code == 403
    published = world.post("/v1/disclosures", {})
    listing = world.client.get("/v1/disclosures")  # no token: the public reads it
    assert listing.status_code == 200 and listing.json()[0]["sha256"] == published["sha256"]
    fetched = world.client.get("/v1/disclosures/latest").json()
    document = fetched["document"]
    assert document["number"] == published["number"]
    assert {a["operator"] for a in document["authorizations"]} >= {
        "城市数据运营有限公司",
        "普惠金融科技有限公司",
    }
    assert document["usage"]["jobs"] >= 1 and "SELECT" not in json.dumps(document, ensure_ascii=False)
    assert world.client.get(f"/v1/disclosures/{published['number'] + 5}").status_code == 404

    saved, key = tmp_path / "disclosure.json", tmp_path / "ledger.vkey"
    saved.write_text(json.dumps(fetched), encoding="utf-8")
    key.write_text(fetched["public_key"], encoding="utf-8")
    runner = CliRunner()
    ok = runner.invoke(app, ["disclosure", "verify", str(saved), "--public-key", str(key)])
    assert ok.exit_code == 0 and ok.output.startswith("ok: disclosure"), ok.output
    fetched["document"]["usage"]["jobs"] += 1000
    saved.write_text(json.dumps(fetched), encoding="utf-8")
    failed = runner.invoke(app, ["disclosure", "verify", str(saved), "--public-key", str(key)])
    assert failed.exit_code == 1 and "altered" in failed.output


def test_a_bad_period_is_refused_and_publishes_nothing(world: World) -> None:
    before = world.client.get("/v1/disclosures").json()
    body = {"start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"}
    refused = world.client.post("/v1/disclosures", json=body, headers=world.headers("authority"))
    assert refused.status_code == 422 and "must end after" in refused.json()["detail"]
    naive = world.client.post(
        "/v1/disclosures", json={"start": "2030-01-01T00:00:00"}, headers=world.headers("authority")
    )
    assert naive.status_code == 422
    assert world.client.get("/v1/disclosures").json() == before
