"""Signed releases: an artifact verifies against its signature and the ledger, and any change fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import Ledger, PublicKey, open_checkpoint
from ledger.bundle import inclusion_bundle
from outbound_review.errors import ReleaseInvalid
from outbound_review.release import verify_release, write_release

KEY = Ed25519PrivateKey.generate()
KEY_NAME = "veilbox.test/releases"
TABLE = pa.table({"district": ["城东区", "城西区"], "residents": [1204, 988]})
MANIFEST = {
    "job_id": "job_1",
    "scenario": "governance",
    "sql_sha256": "ab" * 32,
    "reviewers": ["reviewer:bob"],
}


def _release(tmp_path: Path) -> tuple[Path, str]:
    out = tmp_path / "release"
    return out, write_release(out, TABLE, MANIFEST, KEY, KEY_NAME)


def _public() -> PublicKey:
    return PublicKey.from_private(KEY_NAME, KEY)


def test_a_release_verifies_and_carries_its_result_three_ways(tmp_path: Path) -> None:
    out, artifact = _release(tmp_path)
    assert verify_release(out, _public()).startswith(
        f"release of job_1 (governance) verified: artifact {artifact[:16]}"
    )
    assert json.loads((out / "result.json").read_text()) == TABLE.to_pylist()
    assert "城东区" in (out / "result.csv").read_text()


@pytest.mark.parametrize("victim", ["result.csv", "result.parquet", "result.json", "manifest.json"])
def test_any_altered_file_fails(tmp_path: Path, victim: str) -> None:
    out, _ = _release(tmp_path)
    data = bytearray((out / victim).read_bytes())
    data[-2] ^= 0x01
    (out / victim).write_bytes(bytes(data))
    with pytest.raises(ReleaseInvalid):
        verify_release(out, _public())


def test_a_signature_by_another_key_fails(tmp_path: Path) -> None:
    out, _ = _release(tmp_path)
    with pytest.raises(ReleaseInvalid, match="signature"):
        verify_release(out, PublicKey.from_private(KEY_NAME, Ed25519PrivateKey.generate()))


def test_a_resigned_forgery_with_a_swapped_file_fails(tmp_path: Path) -> None:
    out, _ = _release(tmp_path)
    (out / "result.csv").write_text('"district","residents"\n"城东区",3\n')
    with pytest.raises(ReleaseInvalid, match=r"result\.csv does not match"):
        verify_release(out, _public())


def _ledger_proof(
    tmp_path: Path, artifact: str, action: str = "result.released"
) -> tuple[dict[str, Any], PublicKey]:
    with Ledger.open(tmp_path / "ledger", origin="veilbox.test/ledger") as log:
        log.append("reviewer:bob", "review.approve", "job_1", {"reason": "ok"})
        receipt = log.append("gateway", action, "job_1", {"artifact_sha256": artifact})
        checkpoint = open_checkpoint(log.checkpoint(), log.public_key())
        return inclusion_bundle(log, receipt.index, checkpoint), log.public_key()


def test_the_ledger_proof_ties_the_artifact_to_its_release_entry(tmp_path: Path) -> None:
    out, artifact = _release(tmp_path)
    proof, ledger_key = _ledger_proof(tmp_path, artifact)
    assert "is in log veilbox.test/ledger" in verify_release(
        out, _public(), proof=proof, ledger_key=ledger_key
    )
    with pytest.raises(ReleaseInvalid, match="pinned public key"):
        verify_release(out, _public(), proof=proof)
    with pytest.raises(ReleaseInvalid, match="does not verify"):
        verify_release(out, _public(), proof=proof, ledger_key=_public())


def test_a_proof_of_another_entry_or_artifact_fails(tmp_path: Path) -> None:
    out, artifact = _release(tmp_path)
    wrong_action, key = _ledger_proof(tmp_path / "a", artifact, action="review.approve")
    with pytest.raises(ReleaseInvalid, match="not this release"):
        verify_release(out, _public(), proof=wrong_action, ledger_key=key)
    other_artifact, key = _ledger_proof(tmp_path / "b", "00" * 32)
    with pytest.raises(ReleaseInvalid, match="different artifact"):
        verify_release(out, _public(), proof=other_artifact, ledger_key=key)


def test_a_folder_that_is_not_a_release(tmp_path: Path) -> None:
    with pytest.raises(ReleaseInvalid, match="is not a release"):
        verify_release(tmp_path, _public())


def test_release_verify_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gateway.cli import app

    out, artifact = _release(tmp_path)
    proof, ledger_key = _ledger_proof(tmp_path, artifact)
    (tmp_path / "release.vkey").write_text(_public().vkey)
    (tmp_path / "ledger.vkey").write_text(ledger_key.vkey)
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    args = ["release", "verify", str(out), "--public-key", str(tmp_path / "release.vkey")]
    ok = CliRunner().invoke(
        app, [*args, "--proof", str(tmp_path / "proof.json"), "--ledger-key", str(tmp_path / "ledger.vkey")]
    )
    assert ok.exit_code == 0 and ok.output.startswith("ok: release of job_1")
    (out / "result.json").write_text("[]\n")
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 1 and bad.output.startswith("FAILED result.json does not match")
