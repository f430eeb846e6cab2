"""Signed release artifacts: what leaves, exactly, and proof of who let it out.

A release is a directory::

    result.csv  result.parquet  result.json    the approved result, three ways
    manifest.json                              canonical JSON: job, scenario, datasets and
                                               their content hashes, SQL hash, check report,
                                               reviewers, DP guarantee, ledger index of the
                                               approval, and the SHA-256 of every file above
    manifest.sig                               a C2SP signed note over manifest.json (Ed25519)

The artifact's identity is the SHA-256 of ``manifest.json``; that hash is what the ledger's
``result.released`` entry records, so :func:`verify_release` can check a directory against
the signature and, given an inclusion proof of that entry, against the ledger.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import Entry, LedgerError, PublicKey, canonical_json, open_note, sign_note
from ledger.bundle import verify_bundle
from outbound_review.errors import ReleaseInvalid

RESULT_FILES = ("result.csv", "result.parquet", "result.json")
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"


def write_release(
    out: Path, table: pa.Table, manifest: Mapping[str, Any], key: Ed25519PrivateKey, key_name: str
) -> str:
    """Write the artifact files and the signed manifest into ``out``; returns the artifact hash."""
    out.mkdir(parents=True, exist_ok=False)
    pacsv.write_csv(table, out / "result.csv")
    pq.write_table(table, out / "result.parquet")
    (out / "result.json").write_bytes(canonical_json(table.to_pylist()) + b"\n")
    files = {name: _sha256(out / name) for name in RESULT_FILES}
    body = canonical_json({**manifest, "files": files})
    (out / MANIFEST).write_bytes(body)
    (out / SIGNATURE).write_text(sign_note(body.decode("utf-8") + "\n", key_name, key), encoding="utf-8")
    return hashlib.sha256(body).hexdigest()


def verify_release(
    folder: Path,
    key: PublicKey,
    *,
    proof: Mapping[str, Any] | None = None,
    ledger_key: PublicKey | None = None,
) -> str:
    """Check an artifact against its signature and, with ``proof``, against the ledger.

    ``key`` is the platform's release key and ``ledger_key`` the ledger's, both pinned by
    the verifier — never taken from the artifact. Returns a one-line summary; raises
    ReleaseInvalid naming what does not hold.
    """
    try:
        body = (folder / MANIFEST).read_bytes()
        note = (folder / SIGNATURE).read_text(encoding="utf-8")
    except OSError as exc:
        raise ReleaseInvalid(f"{folder} is not a release: {exc.strerror}") from None
    try:
        signed = open_note(note, key)
    except LedgerError as exc:
        raise ReleaseInvalid(f"the manifest signature does not verify: {exc}") from None
    if signed.encode("utf-8") != body + b"\n":
        raise ReleaseInvalid("manifest.json is not the manifest that was signed")
    try:
        manifest = json.loads(body)
        files, job_id, scenario = dict(manifest["files"]), str(manifest["job_id"]), str(manifest["scenario"])
    except (ValueError, KeyError, TypeError):
        raise ReleaseInvalid("the signed manifest lacks its files, job or scenario") from None
    if set(files) != set(RESULT_FILES):
        raise ReleaseInvalid(
            f"the manifest lists {sorted(files)}, not the release files {list(RESULT_FILES)}"
        )
    for name, digest in files.items():
        if not (folder / name).is_file() or _sha256(folder / name) != digest:
            raise ReleaseInvalid(f"{name} does not match the signed manifest: the artifact was altered")
    artifact = hashlib.sha256(body).hexdigest()
    summary = f"release of {job_id} ({scenario}) verified: artifact {artifact[:16]}…"
    if proof is None:
        return summary
    if ledger_key is None:
        raise ReleaseInvalid("checking the ledger proof needs the ledger's pinned public key")
    return f"{summary}; {_check_ledger(proof, ledger_key, artifact, job_id)}"


def _check_ledger(proof: Mapping[str, Any], ledger_key: PublicKey, artifact: str, job_id: str) -> str:
    try:
        account = verify_bundle(proof, ledger_key)
        entry = Entry.parse(str(proof["entry"]).encode("utf-8"))
    except LedgerError as exc:
        raise ReleaseInvalid(f"the ledger proof does not verify: {exc}") from None
    if entry.action != "result.released" or entry.subject != job_id:
        raise ReleaseInvalid(
            f"the proven ledger entry is {entry.action} on {entry.subject}, not this release"
        )
    if entry.details.get("artifact_sha256") != artifact:
        raise ReleaseInvalid("the ledger records a different artifact for this release")
    return account


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
