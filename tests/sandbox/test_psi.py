"""The enclave's PSI services over the vault, their ledger trail, and the operator's CLI."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from deid.errors import PsiError
from deid.identifiers import normalize_identifier
from deid.psi import PsiClient, PsiServer, RequestInfo, inspect_request, pack_reply
from gateway.cli.psi import psi_app
from ledger import Entry
from sandbox.city import CITY_COLUMNS
from sandbox.enclave import Enclave
from sandbox.ingest import IngestRequest, ingest
from sandbox.psi import (
    PsiLimits,
    enclave_client_match,
    enclave_client_request,
    enclave_server_respond,
    enclave_server_setup,
)
from sandbox.synth import generate_city

DOMAIN = "enterprise"
OPERATOR = "operator:bank"
STRANGERS = [f"91110000MA0{i:07d}" for i in range(60)]
"""Identifiers only the operator holds."""


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("city")
    generate_city(2000, 11, out)
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, city: Path) -> Path:
    """A working directory with the city's enterprises ingested: their USCCs sealed in the vault."""
    work = tmp_path_factory.mktemp("psi") / "work"
    with Enclave.open(work, origin="test.veilbox/psi") as enclave:
        ingest(
            enclave,
            IngestRequest(
                dataset="enterprises",
                files=(city / "enterprises.parquet",),
                provider="market_regulation_bureau",
                level=2,
                declared={c.name: c for c in CITY_COLUMNS["enterprises"]},
            ),
        )
    return work


@pytest.fixture
def enclave(workdir: Path) -> Iterator[Enclave]:
    with Enclave.open(workdir, origin="test.veilbox/psi") as opened:
        yield opened


@pytest.fixture
def usccs(city: Path) -> list[str]:
    """The enclave's raw enterprise identifiers, as the city generated them."""
    return [str(v) for v in pq.read_table(city / "enterprises.parquet")["uscc"].to_pylist()]


def _messy(values: list[str]) -> list[str]:
    """The same identifiers as an operator's own system might spell them."""
    return [f" {v[:6].lower()} {v[6:]}" if i % 2 else v.lower() for i, v in enumerate(values)]


def _last(enclave: Enclave) -> Entry:
    return list(enclave.ledger.entries())[-1]


def _holds_no_item(entry: Entry, items: list[str]) -> None:
    text = json.dumps(entry.details, ensure_ascii=False)
    for item in items:
        assert normalize_identifier(item) not in text.upper()


@pytest.mark.parametrize("reveal", [False, True])
def test_the_operator_learns_what_its_scenario_allows(
    enclave: Enclave, usccs: list[str], reveal: bool
) -> None:
    operator_list = _messy(usccs[:40]) + STRANGERS
    client = PsiClient.create(operator_list, reveal_intersection=reveal)
    session = enclave_server_setup(enclave, DOMAIN, client.size, actor=OPERATOR, reveal_intersection=reveal)
    response = enclave_server_respond(enclave, session, client.request())
    assert client.intersection_size(session.setup, response) == 40
    if reveal:
        assert client.intersection(session.setup, response) == sorted(usccs[:40])
    else:
        with pytest.raises(PsiError):
            client.intersection(session.setup, response)
    entry = _last(enclave)
    assert (entry.action, entry.actor, entry.subject) == ("psi.size_answered", OPERATOR, session.session_id)
    assert entry.details["domain"] == DOMAIN and entry.details["reveal_intersection"] is reveal
    assert (entry.details["operator_items"], entry.details["enclave_items"]) == (100, len(usccs))
    _holds_no_item(entry, usccs + STRANGERS)


def test_the_enclave_learns_its_records_on_the_list_and_never_sees_the_list(
    enclave: Enclave, usccs: list[str], workdir: Path
) -> None:
    session = enclave_client_request(enclave, DOMAIN, actor=OPERATOR)
    assert inspect_request(session.request) == RequestInfo(len(usccs), True)
    operator_list = _messy(usccs[10:30]) + STRANGERS
    server = PsiServer(operator_list, reveal_intersection=True, structure="raw")
    setup = server.setup(len(usccs))
    reply = pack_reply(setup, server.respond(session.request))
    match = enclave_client_match(enclave, session, reply)
    assert list(match.pseudonyms) == sorted(enclave.pseudonymizer.pseudonym(u, DOMAIN) for u in usccs[10:30])
    assert (match.enclave_items, match.operator_items) == (len(usccs), 80)
    assert {enclave.vault.reveal(DOMAIN, p) for p in match.pseudonyms} == set(usccs[10:30])
    entry = _last(enclave)
    assert (entry.action, entry.actor, entry.index) == ("psi.matched", OPERATOR, match.ledger_index)
    assert (entry.details["matched"], entry.details["operator_items"]) == (20, 80)
    _holds_no_item(entry, usccs + STRANGERS)
    # All the enclave receives or keeps: the reply (blinded points) and its own files.
    stored = b"".join(p.read_bytes() for p in workdir.rglob("*") if p.is_file())
    for item in operator_list + [normalize_identifier(i) for i in operator_list]:
        assert item.encode() not in reply
        assert item.encode() not in stored


def test_refusals_are_clear_and_recorded(enclave: Enclave, usccs: list[str]) -> None:
    small = PsiLimits(max_operator_items=10, max_enclave_items=10_000, workers=1)
    with pytest.raises(PsiError, match="up to 10 items, not 11"):
        enclave_server_setup(enclave, DOMAIN, 11, actor=OPERATOR, limits=small)
    with pytest.raises(PsiError, match="limited to 50"):
        enclave_server_setup(enclave, DOMAIN, 5, actor=OPERATOR, limits=PsiLimits(max_enclave_items=50))
    with pytest.raises(PsiError, match="no identifiers in join domain 'nowhere'"):
        enclave_server_setup(enclave, "nowhere", 5, actor=OPERATOR)
    session = enclave_server_setup(enclave, DOMAIN, 5, actor=OPERATOR)
    with pytest.raises(PsiError, match="the request holds 6 items but the setup was made for 5"):
        enclave_server_respond(
            enclave, session, PsiClient.create(usccs[:6], reveal_intersection=False).request()
        )
    with pytest.raises(PsiError, match="fresh key"):
        enclave_server_respond(
            enclave, session, PsiClient.create(usccs[:5], reveal_intersection=False).request()
        )
    entry = _last(enclave)
    assert (entry.action, entry.subject, entry.details["domain"]) == (
        "psi.refused",
        session.session_id,
        DOMAIN,
    )
    assert "fresh key" in entry.details["reason"]

    asked = enclave_client_request(enclave, DOMAIN, actor=OPERATOR)
    compressed = PsiServer(STRANGERS, reveal_intersection=True, structure="gcs")
    reply = pack_reply(compressed.setup(len(usccs)), compressed.respond(asked.request))
    with pytest.raises(PsiError, match="accepts only raw"):
        enclave_client_match(enclave, asked, reply)
    with pytest.raises(PsiError, match="answered already"):
        enclave_client_match(enclave, asked, reply)
    asked = enclave_client_request(enclave, DOMAIN, actor=OPERATOR)
    exact = PsiServer(STRANGERS, reveal_intersection=True, structure="raw")
    reply = pack_reply(exact.setup(len(usccs)), exact.respond(asked.request))
    with pytest.raises(PsiError, match="up to 10 items, not 60"):
        enclave_client_match(enclave, asked, reply, limits=small)
    assert _last(enclave).action == "psi.refused"


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(psi_app, name="psi")
    return app


def test_the_cli_round_trip_against_a_real_enclave(
    enclave: Enclave, usccs: list[str], tmp_path: Path
) -> None:
    app, runner = _cli(), CliRunner()
    customers = tmp_path / "customers.csv"
    rows = _messy(usccs[:25]) + STRANGERS[:15]
    customers.write_text("name,uscc\n" + "".join(f"c{i},{v}\n" for i, v in enumerate(rows)))
    request, state = tmp_path / "request.bin", tmp_path / "state.json"
    items = ["--items", str(customers), "--column", "uscc"]
    made = runner.invoke(
        app, ["psi", "request", *items, "--out", str(request), "--state", str(state), "--reveal-items"]
    )
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    session = enclave_server_setup(
        enclave, DOMAIN, inspect_request(request.read_bytes()).size, actor=OPERATOR, reveal_intersection=True
    )
    setup, response = tmp_path / "setup.bin", tmp_path / "response.bin"
    setup.write_bytes(session.setup)
    response.write_bytes(enclave_server_respond(enclave, session, request.read_bytes()))
    answer = ["psi", "result", "--setup", str(setup), "--response", str(response), "--state", str(state)]
    result = runner.invoke(app, [*answer, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"size": 25, "of": 40, "items": sorted(usccs[:25])}

    asked = enclave_client_request(enclave, DOMAIN, actor=OPERATOR)
    enclave_request, reply = tmp_path / "req.bin", tmp_path / "setup_and_response.bin"
    enclave_request.write_bytes(asked.request)
    serve = ["psi", "serve-list", *items, "--enclave-request", str(enclave_request), "--out", str(reply)]
    served = runner.invoke(app, serve)
    assert served.exit_code == 0, served.output
    match = enclave_client_match(enclave, asked, reply.read_bytes())
    assert list(match.pseudonyms) == sorted(enclave.pseudonymizer.pseudonym(u, DOMAIN) for u in usccs[:25])

    refused = runner.invoke(app, [*serve, "--max-request", "10"])
    assert isinstance(refused.exception, PsiError) and "over the limit of 10" in str(refused.exception)
    state.chmod(0o644)
    too_open = runner.invoke(app, answer)
    assert isinstance(too_open.exception, PsiError) and "chmod 600" in str(too_open.exception)
    wrong = runner.invoke(
        app, ["psi", "request", "--items", str(customers), "--column", "id", "--out", str(request)]
    )
    assert isinstance(wrong.exception, PsiError) and "no column 'id'" in str(wrong.exception)


def test_the_cli_prints_only_the_size_when_that_is_all_it_asked(
    enclave: Enclave, usccs: list[str], tmp_path: Path
) -> None:
    app, runner = _cli(), CliRunner()
    customers = tmp_path / "customers.csv"
    customers.write_text("uscc\n" + "\n".join(usccs[:7] + STRANGERS[:3]) + "\n")
    request, state = tmp_path / "request.bin", tmp_path / "state.json"
    args = ["psi", "request", "--items", str(customers), "--column", "uscc", "--out", str(request)]
    assert runner.invoke(app, [*args, "--state", str(state)]).exit_code == 0
    session = enclave_server_setup(enclave, DOMAIN, 10, actor=OPERATOR)
    (tmp_path / "s.bin").write_bytes(session.setup)
    (tmp_path / "r.bin").write_bytes(enclave_server_respond(enclave, session, request.read_bytes()))
    result = runner.invoke(
        app,
        ["psi", "result", "--setup", str(tmp_path / "s.bin"), "--response", str(tmp_path / "r.bin"),
         "--state", str(state)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output == "7 of your 10 identifiers are in the enclave's set\n"
