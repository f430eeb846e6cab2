"""Where the gateway keeps its own state in a working directory, beside the enclave's.

::

    WORKDIR/
      control.sqlite        the control plane (organisations … jobs); never raw data
      review/               the review gate: queue, decisions, the checked results
      releases/JOB/         released artifacts (result files, manifest, signature)
      release.pub           the platform's release-verification key (a vkey line)
      inputs.pub            the enclave's key for sealing raw inputs (x25519:BASE64)
      psi/JOB/              a PSI job's blinded messages: the enclave's request, the reply
      checkpoints/SIZE.note every ledger checkpoint the gateway signed, for consistency proofs
      credentials.json      tokens the demo made, for continuing by hand (demo only)

The enclave's own files (``enclave/``, ``catalog.sqlite``, ``budget.sqlite``,
``quarantine/``, ``ledger/``) are laid out by :mod:`sandbox.enclave`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ledger import PublicKey


@dataclass(frozen=True)
class Layout:
    """The gateway's paths in one working directory."""

    root: Path

    @property
    def review(self) -> Path:
        return self.root / "review"

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def release_key(self) -> Path:
        return self.root / "release.pub"

    @property
    def input_key(self) -> Path:
        return self.root / "inputs.pub"

    @property
    def psi(self) -> Path:
        return self.root / "psi"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def control(self) -> Path:
        return self.root / "control.sqlite"

    @property
    def consents(self) -> Path:
        return self.root / "consent.sqlite"

    @property
    def verification_rate(self) -> Path:
        return self.root / "verification-rate.sqlite"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def budget(self) -> Path:
        return self.root / "budget.sqlite"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def data_keys(self) -> Path:
        """The per-operator data keys (the same file the enclave opens)."""
        return self.root / "data-keys" / "keys.sqlite"

    @property
    def disclosures(self) -> Path:
        return self.root / "disclosures"

    @property
    def exit_reports(self) -> Path:
        return self.root / "exit-reports"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials.json"

    def remove_results(self, job_ids: list[str]) -> None:
        """Delete what jobs left in quarantine and in review (never the ledger)."""
        for job_id in job_ids:
            shutil.rmtree(self.quarantine / job_id, ignore_errors=True)
            shutil.rmtree(self.review / "results" / job_id, ignore_errors=True)

    def publish(self, path: Path, text: str) -> None:
        """Write a public key where verifiers and the API read it (atomically)."""
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        staging.write_text(text + "\n", encoding="utf-8")
        os.replace(staging, path)

    def release_public_key(self) -> PublicKey | None:
        """The published release key, or None before the runner first started."""
        text = _read(self.release_key)
        return None if text is None else PublicKey.from_vkey(text)

    def input_public_key(self) -> str | None:
        """The published input key (``x25519:BASE64``), or None before the runner first started."""
        return _read(self.input_key)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
