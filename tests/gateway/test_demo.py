"""`veilbox demo` tells the whole story and is re-runnable."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from gateway.cli import app
from ledger import verify_log

runner = CliRunner()


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--workdir", str(workdir), "--rows", "2000"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    out = result.output
    for dataset in ("residents", "enterprises", "social_insurance", "utility_usage", "credit_records"):
        assert dataset in out
    assert "resident_id (person)" in out
    assert "[MOCK]" in out
    for rule in ("P-IDENT-OUTPUT", "P-AGGREGATE", "P-LIMIT", "P-TABLE-FUNCTION"):
        assert rule in out, rule
    assert "reused at no cost" in out
    assert "approved by reviewer + reviewer2" in out and "rejected: SDC-MIN-CELL" in out
    assert out.count("verified: artifact") >= 2
    assert "extends the saved checkpoint" in out and "extends its checkpoint" in out
    assert "result.released by usr_" in out
    for attack in (
        "classification level",
        "swap two entries",
        "delete the last entry",
        "forge the checkpoint",
    ):
        assert attack in out
    assert out.count("FAILED") == 4
    assert verify_log(workdir / "platform/ledger").ok
    assert (workdir / "auditor/release-proof.json").exists()
    credentials = json.loads((workdir / "credentials.json").read_text())
    assert set(credentials["users"]) == {
        "authority",
        "operator",
        "developer",
        "reviewer",
        "reviewer2",
        "auditor",
    }
    assert set(credentials["scenarios"]) == {"governance", "finance"}
    assert "answered" in out
    assert "V-CONSENT" in out
    uscc = duckdb.execute(
        "SELECT uscc FROM read_parquet(?) ORDER BY uscc LIMIT 1", [str(workdir / "city/enterprises.parquet")]
    ).fetchall()[0][0]
    developer = [
        "--workdir",
        str(workdir / "platform"),
        "--token",
        credentials["users"]["developer"]["token"],
        "--json",
    ]
    question = ["--scenario", credentials["scenarios"]["finance"], "--template", "V-CAPITAL-AT-LEAST"]
    asked = runner.invoke(
        app, [*developer, "verify", "ask", *question, "--subject", uscc, "--param", "threshold=0"]
    )
    assert asked.exit_code == 0, asked.output
    assert json.loads(asked.stdout)["outcome"]["answer"] is True
    jobs = runner.invoke(app, [*developer, "job", "list"])
    assert jobs.exit_code == 0, jobs.output
    assert len(json.loads(jobs.stdout)) >= 9, jobs.stdout


def test_demo_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    assert runner.invoke(app, ["demo", "--workdir", str(workdir), "--rows", "500"]).exit_code == 0
    again = runner.invoke(app, ["demo", "--workdir", str(workdir), "--rows", "500"])
    assert again.exit_code != 0
    assert "pass --force" in again.output
    forced = runner.invoke(app, ["demo", "--workdir", str(workdir), "--rows", "500", "--force"])
    assert forced.exit_code == 0


def test_demo_never_replaces_a_directory_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.csv").write_text("a\n")
    result = runner.invoke(app, ["demo", "--workdir", str(tmp_path), "--force"])
    assert result.exit_code != 0
    assert "not replacing it" in result.output
    assert (tmp_path / "precious.csv").exists()


def test_demo_offers_spark_and_refuses_unknown_engines(tmp_path: Path) -> None:
    assert "spark" in runner.invoke(app, ["demo", "--help"], env={"COLUMNS": "250"}).output
    result = runner.invoke(app, ["demo", "--workdir", str(tmp_path / "demo"), "--backend", "presto"])
    assert result.exit_code == 2 and "presto" in result.output
    assert not (tmp_path / "demo").exists(), "nothing is made before the engine is known"
