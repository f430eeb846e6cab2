"""The ``veilbox`` commands over the API: embedded on a workdir, and remote against ``veilbox serve``.

The platform is set up by the commands themselves — init, ingest, organisations, users,
tokens, an authorization and an approved scenario — then one result goes the whole way
from a mock run to a verified release. Most commands run in-process, through Typer's runner
or the console script's entry point (``tests.gateway.commands``); the real console script
serves the platform, checks a release, and shows what a user sees on errors: one made before
the platform is reached, one the platform makes on a workdir, and one from a running server.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from click.testing import Result
from typer.testing import CliRunner

from gateway.cli import app
from gateway.control.accounting import ACCOUNTING_TZ
from sandbox.synth import generate_city
from tests.gateway.commands import VEILBOX, veilbox_in_process, veilbox_script

DISTRICTS = "SELECT district, COUNT(*) AS n FROM residents GROUP BY district"
COLUMNS = "resident_id,district,education,gender,birth_date,household_size,employed"


@dataclass
class Platform:
    """A workdir set up through the CLI, and a token per role."""

    workdir: Path
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, role: str | None = "authority") -> Result:
        """Run a command in-process on this workdir as ``role``."""
        env = {"VEILBOX_TOKEN": self.tokens[role] if role else None, "VEILBOX_URL": None}
        return CliRunner().invoke(app, [*args, "--workdir", str(self.workdir)], env=env)

    def json(self, *args: str, role: str | None = "authority") -> Any:
        """Run a command with ``--json``; it must succeed and print JSON."""
        result = self.run(*args, "--json", role=role)
        assert result.exit_code == 0, (result.output, result.exception)
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    root = tmp_path_factory.mktemp("cli-api")
    generate_city(2000, 7, root / "city")
    made = Platform(root / "work")
    init = CliRunner().invoke(
        app,
        ["init", "--workdir", str(made.workdir), "--organisation", "市大数据局", "--name", "王主任",
         "--id-reference", "RN-AUTH-0001", "--json"],
    )  # fmt: skip
    assert init.exit_code == 0, (init.output, init.exception)
    made.tokens["authority"] = json.loads(init.stdout)["token"]
    ingested = made.run(
        "ingest", str(root / "city" / "residents.parquet"), "--dataset", "residents", "--schema", "city",
        "--level", "2", role=None,
    )  # fmt: skip
    assert ingested.exit_code == 0, ingested.output
    for org, kind in (("operator", "operator"), ("review", "review")):
        created = made.json("org", "create", "--name", f"{org} 单位", "--kind", kind, "--id-reference", org)
        made.ids[f"{org} org"] = created["id"]
    for person, org in (("operator", "operator"), ("developer", "operator"), ("reviewer", "review")):
        user = made.json(
            "user", "create", "--organisation", made.ids[f"{org} org"], "--name", f"用户{person}",
            "--role", person, "--id-reference", f"RN-{person}",
        )  # fmt: skip
        made.ids[person] = user["id"]
        made.tokens[person] = made.json("token", "issue", "--user", user["id"], "--label", "tests")["token"]
    grant = made.json(
        "grant", "create", "--operator", made.ids["operator org"], "--mode", "whole",
        "--dataset", "residents", "--category", "public_welfare",
    )  # fmt: skip
    applied = made.json(
        "scenario", "apply", "--authorization", grant["id"], "--name", "人口结构",
        "--purpose", "population by district for service planning", "--dataset", f"residents={COLUMNS}",
        "--output", "aggregate", "--privacy-unit", "residents.resident_id", "--epsilon", "3",
        role="operator",
    )  # fmt: skip
    approved = made.json(
        "scenario", "approve", applied["id"], "--epsilon", "3", "--query-epsilon", "0.5", "--min-cell", "10",
        "--narrow", "residents.gender=quasi_identifier", "--reason", "purpose fits",
    )  # fmt: skip
    assert approved["status"] == "approved"
    assert approved["policy"]["narrow"] == {"residents": {"gender": "quasi_identifier"}}
    made.ids["scenario"] = approved["id"]
    return made


def test_a_result_goes_from_mock_run_to_verified_release(platform: Platform, tmp_path: Path) -> None:
    scenario = platform.ids["scenario"]
    submit = ("job", "submit", "--scenario", scenario)
    mock = platform.json(*submit, "--sql", DISTRICTS, "--mock", role="developer")
    assert mock["marker"] == "MOCK" and mock["columns"] == ["district", "n"]
    query = tmp_path / "districts.sql"
    query.write_text(DISTRICTS)
    job = platform.json(*submit, "--file", str(query), "--wait", role="developer")
    assert job["status"] == "pending_review", job
    queue = platform.json("review", "list", role="reviewer")
    assert job["id"] in [item["job_id"] for item in queue]
    item = platform.json("review", "show", job["id"], role="reviewer")
    assert item["worst_check"] == "pass" and item["columns"] == ["district", "n"]
    approved = platform.json("review", "approve", job["id"], "--reason", "every cell ≥ 10", role="reviewer")
    assert approved["state"] == "approved"
    assert platform.json("job", "show", job["id"], role="developer")["status"] == "released"
    folder = tmp_path / "release"
    saved = platform.json("job", "result", job["id"], "--out", str(folder), role="developer")
    assert sorted(saved["files"]) == sorted(p.name for p in folder.iterdir())
    assert (folder / "result.csv").read_text().startswith('"district","n"')
    release_key = platform.workdir / "release.pub"
    assert platform.json("keys", role=None)["release"] == release_key.read_text().strip()
    verified = veilbox_script("release", "verify", str(folder), "--public-key", str(release_key))
    assert verified.returncode == 0 and verified.stdout.startswith("ok: release of"), verified.stdout


def test_tables_for_people_and_json_for_scripts(platform: Platform) -> None:
    listed = platform.run("org", "list")
    assert listed.exit_code == 0 and "operator 单位" in listed.stdout and "┃ kind" in listed.stdout
    users = platform.json("user", "list")
    assert {u["role"] for u in users} == {"authority", "operator", "developer", "reviewer"}
    assert platform.json("me", role="developer")["role"] == "developer"
    shown = platform.run("scenario", "show", platform.ids["scenario"])
    assert shown.exit_code == 0 and "population by district" in shown.stdout
    assert [g["status"] for g in platform.json("grant", "list")] == ["active"]


def test_a_policy_refusal_prints_its_rule_and_exits_non_zero(platform: Platform) -> None:
    refused = veilbox_script(
        "job", "submit", "--scenario", platform.ids["scenario"], "--sql", "SELECT resident_id FROM residents",
        "--workdir", str(platform.workdir), "--json", token=platform.tokens["developer"],
    )  # fmt: skip
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["status"] == "refused"
    [line] = refused.stderr.splitlines()
    assert line.startswith("error: P-IDENT-OUTPUT: job job_") and " refused: " in line


def test_errors_are_one_clear_line(platform: Platform, tmp_path: Path) -> None:
    work = str(platform.workdir)
    (tmp_path / "notes.txt").write_text("not a platform")
    expected = {
        ("job", "list", "--workdir", work): "error: G-TOKEN: no API token: pass --token or set VEILBOX_TOKEN",
        ("job", "list", "--workdir", work, "--token", "vbx_nothing"): "error: G-TOKEN: ",
        ("job", "show", "job_x", "--workdir", work, "--token", platform.tokens["developer"]): (
            "error: G-TENANT: no job 'job_x' is visible to you"
        ),
        ("init", "--workdir", work, "--organisation", "x", "--name", "y", "--id-reference", "RN-9"): (
            f"error: {work} is already initialised"
        ),
        ("org", "list", "--workdir", str(tmp_path / "none")): f"error: {tmp_path / 'none'} holds no Veilbox",
        (
            "init",
            "--workdir",
            str(tmp_path),
            "--organisation",
            "x",
            "--name",
            "y",
            "--id-reference",
            "RN-9",
        ): (f"error: {tmp_path} is not empty and holds no Veilbox platform"),
    }
    for args, start in expected.items():
        result = veilbox_in_process(*args)
        assert result.returncode == 1, args
        [line] = result.stderr.splitlines()
        assert line.startswith(start), (args, line)
    # The console script itself, for an error found before the platform is reached (the test
    # above has one the platform makes): one line on the terminal, nothing else.
    none = str(tmp_path / "none")
    result = veilbox_script("org", "list", "--workdir", none)
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(expected["org", "list", "--workdir", none]), line


def test_a_revoked_token_stops_working(platform: Platform) -> None:
    issued = platform.json("token", "issue", "--label", "short-lived", role="developer")
    assert issued["user_id"] == platform.ids["developer"]
    platform.tokens["spare"] = issued["token"]
    assert platform.json("me", role="spare")["user_id"] == platform.ids["developer"]
    platform.json("token", "revoke", issued["id"], role="developer")
    denied = platform.run("me", role="spare")
    assert denied.exit_code == 1 and str(denied.exception).startswith("G-TOKEN: ")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(platform: Platform) -> Iterator[str]:
    """``veilbox serve`` on a free local port, stopped the way a user stops it (Ctrl-C)."""
    port = _free_port()
    server = subprocess.Popen(
        [VEILBOX, "serve", "--workdir", str(platform.workdir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(f"{url}/v1/keys").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield url
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_remote_commands_talk_to_a_running_server(platform: Platform, served: str) -> None:
    developer = platform.tokens["developer"]
    me = veilbox_in_process("me", "--url", served, "--json", token=developer)
    assert me.returncode == 0 and json.loads(me.stdout)["user_id"] == platform.ids["developer"]
    submitted = veilbox_in_process(
        "job", "submit", "--url", served, "--scenario", platform.ids["scenario"],
        "--sql", "SELECT education, COUNT(*) AS n FROM residents GROUP BY education", "--wait", "--json",
        token=developer,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout)["status"] == "pending_review"
    listed = veilbox_in_process(
        "--url", served, "--token", developer, "--json", "job", "list", "--limit", "1"
    )
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["id"] == json.loads(submitted.stdout)["id"]
    hidden = veilbox_script("review", "show", "job_x", "--url", served, token=platform.tokens["reviewer"])
    assert hidden.returncode == 1
    assert hidden.stderr == "error: G-TENANT: no review 'job_x' is visible to you\n"
    catalog = veilbox_in_process("--url", served, "--token", developer, "catalog", "list", "--json")
    assert catalog.returncode == 0, catalog.stderr
    assert "residents" in {d["name"] for d in json.loads(catalog.stdout)}


def test_products_meters_and_the_books_through_the_commands(platform: Platform) -> None:
    operator, year = platform.ids["operator org"], str(datetime.now(ACCOUNTING_TZ).year)
    platform.json(
        "cap", "set", "--form", "aggregate", "--unit", "call", "--cap", "500", "--reason", "guidance"
    )
    grant = platform.json(
        "grant", "create", "--operator", operator, "--mode", "whole", "--dataset", "residents",
        "--category", "industry",
    )  # fmt: skip
    platform.json(
        "max-revenue", "set", grant["id"], "--year", year, "--amount", "1000", "--reason", "assessed"
    )
    applied = platform.json(
        "scenario", "apply", "--authorization", grant["id"], "--name", "人口数据产品",
        "--purpose", "for sale", "--dataset", f"residents={COLUMNS}", "--output", "aggregate",
        "--epsilon", "3", role="operator",
    )  # fmt: skip
    platform.json(
        "scenario", "approve", applied["id"], "--epsilon", "3", "--query-epsilon", "0.5", "--reason", "ok"
    )
    register = (
        "product", "register", "--scenario", applied["id"], "--name", "区县人口报告",
        "--description", "by district", "--usage-scope", "planning", "--form", "aggregate",
        "--category", "industry",
    )  # fmt: skip
    over = platform.run(*register, "--price", "500.01", role="operator")
    assert over.exit_code == 1 and str(over.exception).startswith("G-CAP: ")
    assert (
        platform.run(*register, "--price", "1.005", role="operator").exit_code == 1
    )  # fen are the smallest unit
    product = platform.json(*register, "--price", "200.50", role="operator")
    approved = platform.json("product", "approve", product["id"], "--reason", "fits", "--cap", "300")
    assert (approved["price_fen"], approved["cap_fen"]) == (20_050, 30_000)
    assert approved["code"] in {line["code"] for line in platform.json("product", "public", role=None)}
    submit = ("job", "submit", "--scenario", applied["id"], "--sql", DISTRICTS, "--wait")
    job = platform.json(*submit, role="developer")
    meter = platform.json("meter", "show", job["id"], role="developer")
    assert (meter["rows_scanned"], meter["charge"]["amount_fen"]) == (2000, 20_050)
    shown = platform.run("statement", "issue", operator, "--period", year, role="operator")
    assert shown.exit_code == 0 and "200.50" in shown.stdout and "SHA-256" in shown.stdout, shown.stdout
    platform.json(
        "revenue-share", "set-rules", "--authority-share", "20", "--operator-share", "50", "--reason", "ok"
    )
    report = platform.json("revenue-share", "issue", "--period", year, "--cost", f"{operator}=0.50")
    [section] = report["document"]["sections"]
    assert sum(s["fen"] for s in section["shares"]) == section["net_fen"] == 20_050 - 50
    platform.json("max-revenue", "set", grant["id"], "--year", year, "--amount", "300", "--reason", "revised")
    refused = veilbox_in_process(
        *submit, "--workdir", str(platform.workdir), token=platform.tokens["developer"]
    )
    assert refused.returncode == 1 and refused.stderr.startswith("error: G-REVENUE: job job_"), refused.stderr
