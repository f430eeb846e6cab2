"""`veilbox demo` tells the whole story and is re-runnable."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app
from ledger import verify_log

runner = CliRunner()


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--workdir", str(workdir), "--events", "300"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "300 entries chained" in out
    assert "extends the saved checkpoint at size 150" in out
    assert "release.published" in out
    for attack in ("edit one byte", "swap two entries", "truncate", "forge the checkpoint"):
        assert attack in out
    assert out.count("FAILED") == 4
    assert verify_log(workdir / "ledger").ok
    assert (workdir / "auditor/release-proof.json").exists()


def test_demo_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    assert runner.invoke(app, ["demo", "--workdir", str(workdir), "--events", "50"]).exit_code == 0
    again = runner.invoke(app, ["demo", "--workdir", str(workdir), "--events", "50"])
    assert again.exit_code != 0
    assert "pass --force" in again.output
    forced = runner.invoke(app, ["demo", "--workdir", str(workdir), "--events", "50", "--force"])
    assert forced.exit_code == 0


def test_demo_never_replaces_a_directory_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.csv").write_text("a\n")
    result = runner.invoke(app, ["demo", "--workdir", str(tmp_path), "--force"])
    assert result.exit_code != 0
    assert "not replacing it" in result.output
    assert (tmp_path / "precious.csv").exists()
