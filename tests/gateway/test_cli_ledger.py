"""The `veilbox ledger` commands, through the real console script and in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app
from ledger import Ledger, open_checkpoint
from tests.support import ORIGIN, fill

runner = CliRunner()
VEILBOX = str(Path(sys.executable).with_name("veilbox"))


def _ledger(tmp_path: Path, count: int = 12) -> Path:
    with Ledger.open(tmp_path / "ledger", origin=ORIGIN) as log:
        fill(log, count)
    return tmp_path / "ledger"


def test_show_prints_canonical_lines(tmp_path: Path) -> None:
    path = _ledger(tmp_path)
    result = runner.invoke(app, ["ledger", "show", str(path), "--from", "3", "--to", "5"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [json.loads(line)["index"] for line in lines] == [3, 4]


def test_prove_and_verify_proof_offline(tmp_path: Path) -> None:
    path = _ledger(tmp_path)
    key_file = tmp_path / "ledger.vkey"
    key_file.write_text(runner.invoke(app, ["ledger", "public-key", str(path)]).output)
    proof = runner.invoke(app, ["ledger", "prove", str(path), "5"])
    assert proof.exit_code == 0, proof.output
    bundle = tmp_path / "proof.json"
    bundle.write_text(proof.output)
    ok = runner.invoke(app, ["ledger", "verify-proof", str(bundle), "--public-key", str(key_file)])
    assert ok.exit_code == 0
    assert ok.output.startswith("ok: entry 5 ")
    tampered = json.loads(proof.output)
    tampered["entry"] = tampered["entry"].replace("job-5", "job-6")
    bundle.write_text(json.dumps(tampered))
    bad = runner.invoke(app, ["ledger", "verify-proof", str(bundle), "--public-key", str(key_file)])
    assert bad.exit_code == 1
    assert bad.output.startswith("FAILED the inclusion proof for entry 5 does not verify")


def test_consistency_from_a_saved_checkpoint(tmp_path: Path) -> None:
    path = _ledger(tmp_path)
    saved = tmp_path / "saved"
    saved.write_text(runner.invoke(app, ["ledger", "checkpoint", str(path)]).output)
    with Ledger.open(path) as log:
        fill(log, 5, start=100)
        key = log.public_key()
    key_file = tmp_path / "ledger.vkey"
    key_file.write_text(key.vkey)
    result = runner.invoke(app, ["ledger", "consistency", str(path), str(saved)])
    assert result.exit_code == 0
    assert json.loads(result.output)["new_size"] == 17
    (tmp_path / "cons.json").write_text(result.output)
    check = runner.invoke(
        app, ["ledger", "verify-proof", str(tmp_path / "cons.json"), "--public-key", str(key_file)]
    )
    assert check.output.startswith("ok: log test.veilbox/ledger at size 17 extends its checkpoint at size 12")


def test_checkpoint_command_prints_a_signed_note(tmp_path: Path) -> None:
    path = _ledger(tmp_path, 4)
    note = runner.invoke(app, ["ledger", "checkpoint", str(path)]).output
    with Ledger.open(path) as log:
        assert open_checkpoint(note, log.public_key()).size == 4


def test_rebuild_command(tmp_path: Path) -> None:
    path = _ledger(tmp_path)
    (path / "tree.nodes").unlink()
    result = runner.invoke(app, ["ledger", "rebuild", str(path)])
    assert result.exit_code == 0
    assert result.output.startswith("rebuilt: 12 entries, root ")


def test_console_script_reports_errors_on_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a ledger")
    result = subprocess.run(
        [VEILBOX, "ledger", "show", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path} is not a ledger: it holds notes.txt and no ledger.json"
    ]


def test_console_script_verify_exit_codes(tmp_path: Path) -> None:
    path = _ledger(tmp_path)
    runner.invoke(app, ["ledger", "checkpoint", str(path)])
    good = subprocess.run(
        [VEILBOX, "ledger", "verify", str(path)], capture_output=True, text=True, check=False
    )
    assert good.returncode == 0
    assert good.stdout.startswith("ok: ")
    data = (path / "entries.jsonl").read_bytes()
    (path / "entries.jsonl").write_bytes(data.replace(b"job-3", b"job-X", 1))
    bad = subprocess.run(
        [VEILBOX, "ledger", "verify", str(path)], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1
    assert bad.stdout.startswith("FAILED entry 3:")


def test_unreadable_key_file_is_a_clear_error(tmp_path: Path) -> None:
    path = _ledger(tmp_path)
    (tmp_path / "key").write_text("not a key")
    result = subprocess.run(
        [VEILBOX, "ledger", "verify", str(path), "--public-key", str(tmp_path / "key")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "error:" in result.stderr
    assert "verifier key" in result.stderr
