"""Each package's public surface is exactly what it means to export."""

from __future__ import annotations

import importlib

import pytest

SURFACES = {
    "ledger": {
        "MAX_ENTRY_BYTES", "Checkpoint", "CheckpointError", "Entry", "EntryError", "Failure", "Ledger",
        "LedgerCorruptError", "LedgerError", "LedgerIOError", "LedgerKeyError", "NotALedgerError",
        "ProofError", "PublicKey", "Receipt", "VeilboxError", "VerifyReport", "canonical_json", "merkle",
        "open_checkpoint", "open_note", "sign_note", "verify_log",
    },
    "sandbox": set(),
    "deid": set(),
    "outbound_review": {
        "RULES", "CheckParameters", "CheckReport", "DifferencingFinding", "Gate", "Release",
        "ReleaseDescriptor", "ReleaseIndex", "ReleaseInvalid", "ResultEvidence", "ReviewError",
        "ReviewItem", "ReviewQueue", "ReviewRefused", "Rule", "RuleOutcome", "SourceDataset", "Submission",
        "describe_release", "evidence_from", "round_counts", "run_checks", "suppress", "verify_release",
        "write_release",
    },
    "gateway": set(),
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(SURFACES))
def test_all_is_the_intended_surface(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == SURFACES[package]
    for name in module.__all__:
        assert hasattr(module, name)


def test_merkle_names_auditors_rely_on() -> None:
    from ledger import merkle

    for name in (
        "leaf_hash", "node_hash", "root", "inclusion_proof", "verify_inclusion",
        "consistency_proof", "verify_consistency",
    ):  # fmt: skip
        assert callable(getattr(merkle, name))


def test_the_ledger_imports_nothing_else_of_veilbox() -> None:
    import ast
    from pathlib import Path

    import ledger

    ours = {"sandbox", "deid", "outbound_review", "gateway"}
    for path in Path(ledger.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in ours, f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & ours, path.name
