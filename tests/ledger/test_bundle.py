"""Proof bundles verify offline with only the public key, and refuse every alteration."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger import CheckpointError, Ledger, ProofError, PublicKey, open_checkpoint
from ledger.bundle import consistency_bundle, inclusion_bundle, verify_bundle
from tests.support import fill


@pytest.fixture
def signed(log: Ledger) -> tuple[Ledger, Any, Any]:
    fill(log, 13)
    old = open_checkpoint(log.checkpoint(), log.public_key())
    fill(log, 8, start=13)
    new = open_checkpoint(log.checkpoint(), log.public_key())
    return log, old, new


def test_inclusion_bundle_round_trips_through_json(signed: tuple[Ledger, Any, Any]) -> None:
    log, _, new = signed
    bundle = json.loads(json.dumps(inclusion_bundle(log, 7, new)))
    account = verify_bundle(bundle, PublicKey.from_vkey(log.public_key().vkey))
    assert account.startswith("entry 7 (job.submitted by developer:dev2 on job-7")
    assert account.endswith(f"at size {new.size}")


def test_consistency_bundle_verifies(signed: tuple[Ledger, Any, Any]) -> None:
    log, old, new = signed
    account = verify_bundle(consistency_bundle(log, old, new), log.public_key())
    assert account.endswith("at size 21 extends its checkpoint at size 13")


@pytest.mark.parametrize(
    ("alter", "error", "problem"),
    [
        (lambda b: b.update(entry=b["entry"].replace("job-7", "job-8")), ProofError, "does not verify"),
        (
            lambda b: b.update(entry=b["entry"].replace('"index":7', '"index":6')),
            ProofError,
            "does not verify",
        ),
        (lambda b: b.update(entry="{}"), ProofError, "not a valid ledger entry"),
        (lambda b: b.update(proof=b["proof"][:-1]), ProofError, "does not verify"),
        (lambda b: b.update(proof=["zz"]), ProofError, "not a list of hex"),
        (lambda b: b.update(proof="abc"), ProofError, "'proof' is missing or not a list"),
        (lambda b: b.pop("checkpoint"), ProofError, "'checkpoint' is missing"),
        (
            lambda b: b.update(checkpoint=b["checkpoint"].replace("\n21\n", "\n22\n")),
            CheckpointError,
            "invalid",
        ),
        (lambda b: b.update(type="other"), ProofError, "unknown bundle type"),
    ],
)
def test_altered_inclusion_bundles_are_refused(
    signed: tuple[Ledger, Any, Any], alter: Any, error: type[Exception], problem: str
) -> None:
    log, _, new = signed
    bundle = inclusion_bundle(log, 7, new)
    alter(bundle)
    with pytest.raises(error, match=problem):
        verify_bundle(bundle, log.public_key())


def test_consistency_between_unrelated_trees_is_refused(
    signed: tuple[Ledger, Any, Any], tmp_path: Any
) -> None:
    log, old, new = signed
    with Ledger.open(tmp_path / "other", origin=log.origin) as other:
        fill(other, 21, start=500)
        forged_new = open_checkpoint(other.checkpoint(), other.public_key())
        bundle = consistency_bundle(
            other, open_checkpoint(other.checkpoint(), other.public_key()), forged_new
        )
    bundle["old_checkpoint"] = old.note
    with pytest.raises(CheckpointError):
        verify_bundle(bundle, log.public_key())  # the newer checkpoint is not signed by this log
    bundle = consistency_bundle(log, old, new)
    bundle["proof"] = bundle["proof"][1:]
    with pytest.raises(ProofError, match="does not extend"):
        verify_bundle(bundle, log.public_key())


def test_bundles_for_uncovered_entries_are_refused(signed: tuple[Ledger, Any, Any]) -> None:
    log, old, new = signed
    with pytest.raises(ProofError, match="not covered"):
        inclusion_bundle(log, 13, old)
    with pytest.raises(ProofError, match="larger than the newer"):
        consistency_bundle(log, new, old)
